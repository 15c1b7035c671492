package taskrouter_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
)

var (
	ws = taskroutertest.NewSid("WS", 1)
	wa = taskroutertest.NewSid("WA", 4)
	ca = taskroutertest.NewSid("CA", 5)
)

func sendTo(t *testing.T, fake *taskroutertest.Server, cfg taskrouter.Config, n uint64, params outbox.Params) error {
	t.Helper()
	if cfg.Credentials.AccountSid == "" {
		cfg.Credentials.AccountSid = fake.AccountSid
	}
	if cfg.Credentials.AuthToken == "" && cfg.Credentials.APIKey == "" {
		cfg.Credentials.AuthToken = fake.AuthToken
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = fake.URL
	}
	s, err := taskrouter.NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.Send(context.Background(), outbox.Action{
		ReservationSid: taskroutertest.NewSid("WR", n),
		TaskSid:        taskroutertest.NewSid("WT", n),
		WorkspaceSid:   ws,
		Params:         params,
	})
}

func TestSenderParameters(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	for i, tc := range []struct {
		name   string
		params outbox.Params
	}{
		{"accept", outbox.Params{"ReservationStatus": "accepted"}},
		{"reject", outbox.Params{"ReservationStatus": "rejected", "WorkerActivitySid": wa}},
		{"dequeue", outbox.Params{
			"Instruction": "dequeue", "DequeueTo": "client:joey", "DequeueFrom": "+15005550006",
			"DequeuePostWorkActivitySid": wa, "DequeueRecord": "record-from-answer", "DequeueTimeout": 20,
			"DequeueStatusCallbackUrl":   "https://example.com/status",
			"DequeueStatusCallbackEvent": []string{"initiated", "ringing", "answered", "completed"},
		}},
		{"call", outbox.Params{
			"Instruction": "call", "CallTo": "+15551230000", "CallFrom": "+15005550006",
			"CallUrl": "https://example.com/twiml/agent-answer", "CallAccept": true, "CallRecord": "do-not-record",
			"CallTimeout": 30, "CallStatusCallbackUrl": "https://example.com/call-status",
		}},
		{"redirect", outbox.Params{
			"Instruction": "redirect", "RedirectCallSid": ca, "RedirectUrl": "https://example.com/redirect",
			"RedirectAccept": false,
		}},
		{"conference", outbox.Params{
			"Instruction": "conference", "To": "client:joey", "From": "+15005550006", "PostWorkActivitySid": wa,
			"Timeout": 25, "StatusCallback": "https://example.com/conf-status",
			"StatusCallbackEvent": []string{"initiated", "completed"}, "Record": true, "Muted": false, "Beep": "onExit",
			"StartConferenceOnEnter": true, "EndConferenceOnExit": false, "EndConferenceOnCustomerExit": true,
			"BeepOnCustomerEntrance": false, "WaitUrl": "https://example.com/hold", "EarlyMedia": true,
			"MaxParticipants": 3, "ConferenceStatusCallback": "https://example.com/conf",
			"ConferenceStatusCallbackEvent": []string{"start", "end", "join", "leave"}, "ConferenceRecord": "record-from-start",
			"RecordingStatusCallback": "https://example.com/rec",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := uint64(i + 1)
			if err := sendTo(t, fake, taskrouter.Config{}, n, tc.params); err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := fake.RequestsFor(taskroutertest.NewSid("WR", n))
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if d := cmp.Diff(tc.params.Form(), r.Form); d != "" {
				t.Errorf("form TaskRouter got (-decided +sent):\n%s", d)
			}
			wantPath := "/v1/Workspaces/" + ws + "/Tasks/" + taskroutertest.NewSid("WT", n) + "/Reservations/" + taskroutertest.NewSid("WR", n)
			if r.Method != http.MethodPost || r.Path != wantPath || r.User != fake.AccountSid || r.Status != 200 {
				t.Errorf("request = %s %s as %s → %d", r.Method, r.Path, r.User, r.Status)
			}
		})
	}
}

func TestSenderAPIKeyAndPathPrefix(t *testing.T) {
	key, secret := taskroutertest.NewSid("SK", 1), "s3cr3t"
	fake := taskroutertest.NewServer(taskroutertest.Config{APIKeys: map[string]string{key: secret}})
	defer fake.Close()
	// An egress proxy that serves TaskRouter under /taskrouter.
	target, _ := url.Parse(fake.URL)
	proxy := httptest.NewServer(http.StripPrefix("/taskrouter", httputil.NewSingleHostReverseProxy(target)))
	defer proxy.Close()

	err := sendTo(t, fake, taskrouter.Config{Credentials: taskrouter.Credentials{APIKey: key, APISecret: secret}, BaseURL: proxy.URL + "/taskrouter/"}, 1,
		outbox.Params{"ReservationStatus": "accepted"})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].User != key || reqs[0].Status != 200 {
		t.Fatalf("requests = %+v", reqs)
	}
}

func TestSenderErrors(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	accept := outbox.Params{"ReservationStatus": "accepted"}

	t.Run("429 keeps Retry-After", func(t *testing.T) {
		fake.Inject(taskroutertest.NewSid("WR", 1), taskroutertest.Fault{Status: 429, RetryAfter: "3"})
		err := sendTo(t, fake, taskrouter.Config{}, 1, accept)
		var he *outbox.HTTPError
		if !errors.As(err, &he) {
			t.Fatalf("err = %v, want *HTTPError", err)
		}
		want := &outbox.HTTPError{StatusCode: 429, Code: 20429, Message: "Too Many Requests",
			MoreInfo: "https://www.twilio.com/docs/errors/20429", RetryAfter: 3 * time.Second}
		if d := cmp.Diff(want, he); d != "" {
			t.Errorf("error (-want +got):\n%s", d)
		}
	})

	t.Run("401", func(t *testing.T) {
		err := sendTo(t, fake, taskrouter.Config{Credentials: taskrouter.Credentials{AuthToken: "00000000000000000000000000000000"}}, 2, accept)
		var he *outbox.HTTPError
		if !errors.As(err, &he) || he.StatusCode != 401 || he.Code != 20003 {
			t.Fatalf("err = %v, want 401/20003", err)
		}
		if strings.Contains(err.Error(), fake.AuthToken) {
			t.Error("error text holds the token")
		}
	})

	t.Run("not pending", func(t *testing.T) {
		if err := sendTo(t, fake, taskrouter.Config{}, 3, accept); err != nil {
			t.Fatal(err)
		}
		err := sendTo(t, fake, taskrouter.Config{}, 3, accept)
		var he *outbox.HTTPError
		if !errors.As(err, &he) || he.StatusCode != 400 || !strings.Contains(he.Message, "not currently in a Pending state") {
			t.Fatalf("err = %v, want 400 not pending", err)
		}
	})

	t.Run("bad sid is 404", func(t *testing.T) {
		s, _ := taskrouter.NewSender(taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: fake.AccountSid, AuthToken: fake.AuthToken}, BaseURL: fake.URL})
		err := s.Send(context.Background(), outbox.Action{ReservationSid: "WR1", TaskSid: taskroutertest.NewSid("WT", 1), WorkspaceSid: ws, Params: accept})
		var he *outbox.HTTPError
		if !errors.As(err, &he) || he.StatusCode != 404 || he.Code != 20404 {
			t.Fatalf("err = %v, want 404/20404", err)
		}
	})

	t.Run("invalid params are not sent", func(t *testing.T) {
		before := len(fake.Requests())
		for _, p := range []outbox.Params{
			{"Colour": "blue"},
			{"ReservationStatus": []string{"accepted", "rejected"}},
			{"Instruction": "call", "CallTimeout": "soon"},
			{"Instruction": "call", "CallAccept": "maybe"},
			{"If-Match": "etag"},
		} {
			if err := sendTo(t, fake, taskrouter.Config{}, 4, p); !errors.Is(err, outbox.ErrInvalidParams) {
				t.Errorf("%v: err = %v, want ErrInvalidParams", p, err)
			}
		}
		if len(fake.Requests()) != before {
			t.Error("invalid parameters reached TaskRouter")
		}
	})

	t.Run("cancelled while held", func(t *testing.T) {
		hold := make(chan struct{})
		defer close(hold)
		fake.Inject(taskroutertest.NewSid("WR", 5), taskroutertest.Fault{Hold: hold})
		s, _ := taskrouter.NewSender(taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: fake.AccountSid, AuthToken: fake.AuthToken}, BaseURL: fake.URL})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			errc <- s.Send(ctx, outbox.Action{ReservationSid: taskroutertest.NewSid("WR", 5), TaskSid: taskroutertest.NewSid("WT", 5), WorkspaceSid: ws, Params: accept})
		}()
		testkit.Eventually(t, "the request to be held", func() bool { return len(fake.RequestsFor(taskroutertest.NewSid("WR", 5))) == 1 })
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Send ignored its context")
		}
	})

	t.Run("client timeout", func(t *testing.T) {
		hold := make(chan struct{})
		defer close(hold)
		fake.Inject(taskroutertest.NewSid("WR", 6), taskroutertest.Fault{Hold: hold})
		err := sendTo(t, fake, taskrouter.Config{Timeout: 50 * time.Millisecond}, 6, accept)
		var he *outbox.HTTPError
		if err == nil || errors.As(err, &he) {
			t.Fatalf("err = %v, want a network timeout", err)
		}
	})
}

func TestSenderOddAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, err error)
	}{
		{"proxy error page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		}, func(t *testing.T, err error) {
			var he *outbox.HTTPError
			if !errors.As(err, &he) || he.StatusCode != 502 || he.Code != 0 {
				t.Errorf("err = %#v, want 502 without a Twilio code", err)
			}
		}},
		{"success without JSON", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("ok"))
		}, func(t *testing.T, err error) {
			if err != nil {
				t.Errorf("err = %v, want success: TaskRouter took the update", err)
			}
		}},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/", http.StatusMovedPermanently)
		}, func(t *testing.T, err error) {
			var he *outbox.HTTPError
			if !errors.As(err, &he) || he.StatusCode != 301 {
				t.Errorf("err = %v, want a 301 HTTPError", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			s, err := taskrouter.NewSender(taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: taskroutertest.DefaultAccountSid, AuthToken: "abc"}, BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s.Send(context.Background(), outbox.Action{
				ReservationSid: taskroutertest.NewSid("WR", 1), TaskSid: taskroutertest.NewSid("WT", 1), WorkspaceSid: ws,
				Params: outbox.Params{"ReservationStatus": "accepted"},
			}))
		})
	}
}

func TestNewSenderConfig(t *testing.T) {
	ac := taskroutertest.DefaultAccountSid
	for _, tc := range []struct {
		name string
		cfg  taskrouter.Config
	}{
		{"no account", taskrouter.Config{Credentials: taskrouter.Credentials{AuthToken: "t"}}},
		{"bad account", taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: "AC123", AuthToken: "t"}}},
		{"no secret", taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: ac}}},
		{"key without secret", taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: ac, APIKey: "SK1"}}},
		{"secret without key", taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: ac, AuthToken: "t", APISecret: "s"}}},
		{"odd characters", taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: ac, AuthToken: "a:b"}}},
		{"base url scheme", taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: ac, AuthToken: "t"}, BaseURL: "ftp://example.com"}},
		{"base url host", taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: ac, AuthToken: "t"}, BaseURL: "https://"}},
	} {
		if _, err := taskrouter.NewSender(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else if strings.Contains(err.Error(), "a:b") {
			t.Errorf("%s: error shows the token: %v", tc.name, err)
		}
	}
	if _, err := taskrouter.NewSender(taskrouter.Config{Credentials: taskrouter.Credentials{AccountSid: ac, AuthToken: "t"}}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// Every field of every instruction of the rules' table reaches the fake TaskRouter through
// twilio-go under its REST name, with a value of its type, and the fake (which holds
// Twilio's OpenAPI description of the parameters) takes it.
func TestSenderEveryField(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	for i, in := range rules.Instructions {
		t.Run(in.Name, func(t *testing.T) {
			params := outbox.Params{}
			for _, kv := range in.Fixed {
				params[kv[0]] = kv[1]
			}
			for _, f := range in.Fields {
				params[f.REST] = sample(f)
			}
			n := uint64(100 + i)
			if err := sendTo(t, fake, taskrouter.Config{}, n, params); err != nil {
				t.Fatalf("Send(%v): %v", params, err)
			}
			reqs := fake.RequestsFor(taskroutertest.NewSid("WR", n))
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			if d := cmp.Diff(params.Form(), reqs[0].Form); d != "" {
				t.Errorf("form TaskRouter got (-decided +sent):\n%s", d)
			}
		})
	}
}

// sample is a valid value of a field, as the engine would hand it to the outbox.
func sample(f rules.Field) any {
	switch f.Kind {
	case rules.Address:
		return "+15005550006"
	case rules.URL:
		return "https://example.com/" + f.Name
	case rules.SID:
		return taskroutertest.NewSid(f.Prefix, 7)
	case rules.Int:
		return f.Max
	case rules.Bool:
		return true
	case rules.Enum:
		return f.Enum[len(f.Enum)-1]
	case rules.List:
		return f.Enum
	}
	return "text: " + f.Name
}
