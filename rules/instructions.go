package rules

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Kind is the type of value an instruction field takes.
type Kind int

// The kinds of field value. Each normalises to one Go type: string, int, bool or []string.
const (
	String  Kind = iota // free text
	Address             // a phone number (E.164), client:… or sip:… address → string
	URL                 // an absolute http(s) URL → string
	SID                 // a Twilio SID with a fixed two-letter prefix → string
	Int                 // an integer within [Min, Max] → int
	Bool                // true or false → bool
	Enum                // one of Enum; YAML booleans are accepted where Enum holds "true"/"false" → string
	List                // a list of Enum values (or a comma-separated string of them) → []string
)

// Field describes one key an instruction takes under `with`.
type Field struct {
	Name     string   // snake_case key in rules.yaml and, unless Key says otherwise, in the callback answer
	Key      string   // the key in the callback answer when it is not Name
	REST     string   // parameter name for the Reservations REST API
	Kind     Kind     // value type
	Required bool     // must be present
	Prefix   string   // SID prefix, for Kind SID
	Min, Max int      // bounds, for Kind Int
	Enum     []string // allowed values, for Kind Enum and List
	Doc      string   // one line for people and for the JSON Schema
}

// Instruction describes one value of `do` other than defer.
type Instruction struct {
	Name   string
	Fixed  [][2]string // REST parameters every such call carries, e.g. ReservationStatus=accepted
	Fields []Field
	Doc    string
}

// Field returns the named field, or nil.
func (in *Instruction) Field(name string) *Field {
	for i := range in.Fields {
		if in.Fields[i].Name == name {
			return &in.Fields[i]
		}
	}
	return nil
}

// AnswerKey is the key the field has in the synchronous answer to the callback.
func (f *Field) AnswerKey() string {
	if f.Key != "" {
		return f.Key
	}
	return f.Name
}

// FieldNames lists the fields the instruction takes, in table order.
func (in *Instruction) FieldNames() []string {
	names := make([]string, len(in.Fields))
	for i, f := range in.Fields {
		names[i] = f.Name
	}
	return names
}

var (
	callEvents       = []string{"initiated", "ringing", "answered", "completed"}
	conferenceEvents = []string{"start", "end", "join", "leave", "mute", "hold", "speaker"}
	recordValues     = []string{"record-from-answer", "do-not-record"}
	httpMethods      = []string{"GET", "POST"}
	// Regions where a conference recording is mixed, as the description of the REST
	// parameter Region lists them (docs/taskrouter.md).
	regions = []string{"us1", "us2", "ie1", "de1", "sg1", "br1", "au1", "jp1"}
)

func method(name, rest, of string) Field {
	return Field{Name: name, REST: rest, Kind: Enum, Enum: httpMethods, Doc: "HTTP method for " + of + " (default POST)"}
}

func timeout(rest string) Field {
	return Field{Name: "timeout", REST: rest, Kind: Int, Min: 1, Max: 999, Doc: "seconds to ring the worker (1-999)"}
}

// Instructions is the table of instructions and their fields (docs/rules.md), in the order
// docs/rules.md lists them. The validator, the answer encoder, the REST encoder and the JSON
// Schema all read it.
var Instructions = []*Instruction{
	{
		Name:  "accept",
		Doc:   "accept the reservation",
		Fixed: [][2]string{{"ReservationStatus", "accepted"}},
	},
	{
		Name:  "reject",
		Doc:   "reject the reservation; the task goes back to its queue",
		Fixed: [][2]string{{"ReservationStatus", "rejected"}},
		Fields: []Field{
			{Name: "activity_sid", REST: "WorkerActivitySid", Kind: SID, Prefix: "WA", Doc: "Activity SID the worker moves to; without it the worker stays in its current activity"},
		},
	},
	{
		Name:  "dequeue",
		Doc:   "connect the queued call (a Task created by <Enqueue>) to the worker",
		Fixed: [][2]string{{"Instruction", "dequeue"}},
		Fields: []Field{
			{Name: "to", REST: "DequeueTo", Kind: Address, Doc: "worker's number or client:/sip: address; default: the worker's contact_uri"},
			{Name: "from", REST: "DequeueFrom", Kind: Address, Doc: "caller ID shown to the worker (required with via: rest)"},
			{Name: "post_work_activity_sid", REST: "DequeuePostWorkActivitySid", Kind: SID, Prefix: "WA", Doc: "Activity SID after the call"},
			{Name: "record", REST: "DequeueRecord", Kind: Enum, Enum: recordValues, Doc: "record the call"},
			timeout("DequeueTimeout"),
			{Name: "status_callback_url", REST: "DequeueStatusCallbackUrl", Kind: URL, Doc: "call status webhook"},
			{Name: "status_callback_events", REST: "DequeueStatusCallbackEvent", Kind: List, Enum: callEvents, Doc: "call events sent to status_callback_url"},
		},
	},
	{
		Name:  "call",
		Doc:   "place a call to the worker and run TwiML from url on it",
		Fixed: [][2]string{{"Instruction", "call"}},
		Fields: []Field{
			{Name: "from", REST: "CallFrom", Kind: Address, Required: true, Doc: "caller ID shown to the worker"},
			{Name: "url", REST: "CallUrl", Kind: URL, Required: true, Doc: "TwiML URL run when the worker answers"},
			{Name: "to", REST: "CallTo", Kind: Address, Doc: "worker's number or client:/sip: address; default: the worker's contact_uri"},
			{Name: "accept", REST: "CallAccept", Kind: Bool, Doc: "accept the reservation when the call is placed"},
			{Name: "record", REST: "CallRecord", Kind: Enum, Enum: recordValues, Doc: "record the call"},
			timeout("CallTimeout"),
			{Name: "status_callback_url", REST: "CallStatusCallbackUrl", Kind: URL, Doc: "call status webhook"},
		},
	},
	{
		Name:  "conference",
		Doc:   "put the worker and the caller in a conference named after the task",
		Fixed: [][2]string{{"Instruction", "conference"}},
		// The answer keys of conference are documented only for to, from,
		// post_work_activity_sid, timeout and status_callback_url; the others are the snake_case
		// forms of the REST (Participant API) names, singular where those are (docs/taskrouter.md).
		Fields: []Field{
			{Name: "to", REST: "To", Kind: Address, Doc: "worker's number or client:/sip: address; default: the worker's contact_uri"},
			{Name: "from", REST: "From", Kind: Address, Doc: "caller ID shown to the worker"},
			{Name: "post_work_activity_sid", REST: "PostWorkActivitySid", Kind: SID, Prefix: "WA", Doc: "Activity SID after the call (deprecated by Twilio; not valid in multitasking workspaces)"},
			timeout("Timeout"),
			{Name: "status_callback_url", REST: "StatusCallback", Kind: URL, Doc: "worker leg status webhook"},
			method("status_callback_method", "StatusCallbackMethod", "status_callback_url"),
			{Name: "status_callback_events", Key: "status_callback_event", REST: "StatusCallbackEvent", Kind: List, Enum: callEvents, Doc: "worker leg events sent to status_callback_url"},
			{Name: "record", REST: "Record", Kind: Bool, Doc: "record the worker leg"},
			{Name: "muted", REST: "Muted", Kind: Bool, Doc: "worker joins muted"},
			{Name: "beep", REST: "Beep", Kind: Enum, Enum: []string{"true", "false", "onEnter", "onExit"}, Doc: "beep when participants join or leave"},
			{Name: "start_conference_on_enter", REST: "StartConferenceOnEnter", Kind: Bool, Doc: "start the conference when the worker joins"},
			{Name: "end_conference_on_exit", REST: "EndConferenceOnExit", Kind: Bool, Doc: "end the conference when the worker leaves"},
			{Name: "end_conference_on_customer_exit", REST: "EndConferenceOnCustomerExit", Kind: Bool, Doc: "end the conference when the customer leaves"},
			{Name: "beep_on_customer_entrance", REST: "BeepOnCustomerEntrance", Kind: Bool, Doc: "beep when the customer joins"},
			{Name: "wait_url", REST: "WaitUrl", Kind: URL, Doc: "TwiML URL for hold music"},
			method("wait_method", "WaitMethod", "wait_url (GET lets Twilio cache a static file)"),
			{Name: "early_media", REST: "EarlyMedia", Kind: Bool, Doc: "let the worker hear ringing"},
			{Name: "max_participants", REST: "MaxParticipants", Kind: Int, Min: 2, Max: 250, Doc: "largest conference size (2-250)"},
			{Name: "conference_status_callback", REST: "ConferenceStatusCallback", Kind: URL, Doc: "conference status webhook"},
			method("conference_status_callback_method", "ConferenceStatusCallbackMethod", "conference_status_callback"),
			{Name: "conference_status_callback_events", Key: "conference_status_callback_event", REST: "ConferenceStatusCallbackEvent", Kind: List, Enum: conferenceEvents, Doc: "conference events sent to conference_status_callback"},
			{Name: "conference_record", REST: "ConferenceRecord", Kind: Enum, Enum: []string{"true", "false", "record-from-start", "do-not-record"}, Doc: "record the conference"},
			{Name: "conference_trim", REST: "ConferenceTrim", Kind: Enum, Enum: []string{"trim-silence", "do-not-trim"}, Doc: "trim silence from the conference recording (default trim-silence)"},
			{Name: "recording_channels", REST: "RecordingChannels", Kind: Enum, Enum: []string{"mono", "dual"}, Doc: "channels of the recording (default mono)"},
			{Name: "recording_status_callback", REST: "RecordingStatusCallback", Kind: URL, Doc: "recording status webhook"},
			method("recording_status_callback_method", "RecordingStatusCallbackMethod", "recording_status_callback"),
			{Name: "conference_recording_status_callback", REST: "ConferenceRecordingStatusCallback", Kind: URL, Doc: "conference recording status webhook"},
			method("conference_recording_status_callback_method", "ConferenceRecordingStatusCallbackMethod", "conference_recording_status_callback"),
			{Name: "region", REST: "Region", Kind: Enum, Enum: regions, Doc: "region where the recorded audio is mixed"},
			{Name: "sip_auth_username", REST: "SipAuthUsername", Kind: String, Doc: "SIP user name, when to is a sip: address that needs it"},
			{Name: "sip_auth_password", REST: "SipAuthPassword", Kind: String, Doc: "SIP password, when to is a sip: address that needs it"},
			{Name: "jitter_buffer_size", REST: "JitterBufferSize", Kind: Enum, Enum: []string{"off", "small", "medium", "large"}, Doc: "jitter buffer of the conference"},
		},
	},
	{
		Name:  "redirect",
		Doc:   "redirect the queued call to new TwiML",
		Fixed: [][2]string{{"Instruction", "redirect"}},
		Fields: []Field{
			{Name: "call_sid", REST: "RedirectCallSid", Kind: SID, Prefix: "CA", Required: true, Doc: "Call SID of the call to redirect"},
			{Name: "url", REST: "RedirectUrl", Kind: URL, Required: true, Doc: "TwiML URL to redirect the call to"},
			{Name: "accept", REST: "RedirectAccept", Kind: Bool, Doc: "accept the reservation with the redirect"},
		},
	},
}

// Defer is the `do` value that answers {} and leaves the reservation pending.
const Defer = "defer"

// Lookup returns the instruction named do, or nil (also for defer, which takes nothing).
func Lookup(do string) *Instruction {
	for _, in := range Instructions {
		if in.Name == do {
			return in
		}
	}
	return nil
}

// DoValues lists every valid value of `do`.
func DoValues() []string {
	vs := []string{Defer}
	for _, in := range Instructions {
		vs = append(vs, in.Name)
	}
	return vs
}

var (
	sidPattern     = regexp.MustCompile(`^[A-Za-z]{2}[0-9a-fA-F]{32}$`)
	e164Pattern    = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	placeholderSID = "WA0123456789abcdef0123456789abcdef"
)

// Normalize checks v against the field and returns it as the field's Go type (string, int,
// bool or []string). literal says whether v was written in rules.yaml: literal addresses must
// have the documented shape, while values computed from attributes only need the right type
// (TaskRouter accepts a bare client name such as "joey" from a worker's contact_uri).
// The error says what the value should be.
func (f *Field) Normalize(v any, literal bool) (any, error) {
	switch f.Kind {
	case String, Address, URL, SID:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s must be %s, not %s", f.Name, f.want(), describe(v))
		}
		return s, f.checkString(s, literal)
	case Int:
		n, ok := asInt(v)
		if !ok {
			return nil, fmt.Errorf("%s must be %s, not %s", f.Name, f.want(), describe(v))
		}
		if n < f.Min || n > f.Max {
			return nil, fmt.Errorf("%s must be %s, not %d", f.Name, f.want(), n)
		}
		return n, nil
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%s must be %s, not %s", f.Name, f.want(), describe(v))
		}
		return b, nil
	case Enum:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case bool:
			s = strconv.FormatBool(x)
		default:
			return nil, fmt.Errorf("%s must be %s, not %s", f.Name, f.want(), describe(v))
		}
		if !slices.Contains(f.Enum, s) {
			return nil, fmt.Errorf("%s must be %s, not %q", f.Name, f.want(), s)
		}
		return s, nil
	case List:
		var items []string
		switch x := v.(type) {
		case string:
			for _, s := range strings.Split(x, ",") {
				items = append(items, strings.TrimSpace(s))
			}
		case []string:
			items = x
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%s must be %s; an item is %s", f.Name, f.want(), describe(e))
				}
				items = append(items, s)
			}
		default:
			return nil, fmt.Errorf("%s must be %s, not %s", f.Name, f.want(), describe(v))
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("%s must be %s, not an empty list", f.Name, f.want())
		}
		for _, s := range items {
			if !slices.Contains(f.Enum, s) {
				return nil, fmt.Errorf("%s must be %s; %q is not one of them", f.Name, f.want(), s)
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("%s: unknown kind", f.Name)
}

func (f *Field) checkString(s string, literal bool) error {
	switch f.Kind {
	case SID:
		if !sidPattern.MatchString(s) || !strings.EqualFold(s[:2], f.Prefix) {
			return fmt.Errorf("%s must be %s, not %q", f.Name, f.want(), s)
		}
	case URL:
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s must be %s, not %q", f.Name, f.want(), s)
		}
	case Address:
		if !literal {
			if s == "" {
				return fmt.Errorf("%s must be %s, not an empty string", f.Name, f.want())
			}
			return nil
		}
		ok := e164Pattern.MatchString(s) ||
			(strings.HasPrefix(s, "client:") && len(s) > len("client:")) ||
			(strings.HasPrefix(s, "sip:") && len(s) > len("sip:"))
		if !ok {
			return fmt.Errorf("%s must be %s, not %q", f.Name, f.want(), s)
		}
	}
	return nil
}

// want says in words what the field takes, for error messages.
func (f *Field) want() string {
	switch f.Kind {
	case Address:
		return `a phone number in E.164 form ("+15005550006"), "client:NAME" or "sip:URI"`
	case URL:
		return "an absolute http(s) URL"
	case SID:
		return fmt.Sprintf("a SID: %s followed by 32 hex digits, like %s%s", f.Prefix, f.Prefix, placeholderSID[2:])
	case Int:
		return fmt.Sprintf("an integer from %d to %d", f.Min, f.Max)
	case Bool:
		return "true or false"
	case Enum:
		return "one of " + strings.Join(f.Enum, ", ")
	case List:
		return "a list of " + strings.Join(f.Enum, ", ")
	}
	return "a string"
}

// asInt accepts Go integers and integral floats (JSON numbers decode as float64).
func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case uint64:
		if n > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<31 {
			return 0, false
		}
		return int(n), true
	}
	return 0, false
}

// describe names the type of a value the way a rules author thinks of it.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("the boolean %t", x)
	case int, int64, uint64, float64:
		return fmt.Sprintf("the number %v", x)
	case []any, []string:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("a %T", v)
}
