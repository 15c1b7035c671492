package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/server"
	"github.com/reservist/reservist/server/outbox"
)

// newSender makes the twilio-go sender, or none (the outbox's dry-run) without credentials.
// Its errors are about the credentials' shape: configuration errors.
func newSender(cfg *serveConfig) (outbox.Sender, error) {
	if !cfg.haveREST() {
		return nil, nil
	}
	return outbox.NewTwilioSender(outbox.TwilioConfig{
		AccountSid: cfg.accountSid,
		AuthToken:  cfg.authToken,
		APIKey:     cfg.apiKey,
		APISecret:  cfg.apiSecret,
		BaseURL:    cfg.twilioBaseURL,
	})
}

// openOutbox opens the REST outbox in --state-dir, creating the directory if missing.
func openOutbox(cfg *serveConfig, sender outbox.Sender, logger *slog.Logger, reg prometheus.Registerer) (*outbox.Outbox, error) {
	return outbox.Open(cfg.stateDir, outbox.Options{
		Sender:      sender,
		Concurrency: cfg.restConcurrency,
		Logger:      logger,
		Registerer:  reg,
	})
}

// outboxAdapter gives the server the outbox in the server's own terms, which keeps the
// server package free of the store.
type outboxAdapter struct{ o *outbox.Outbox }

func (a outboxAdapter) Put(x server.Action) (bool, error) {
	return a.o.Put(outbox.Action{
		ReservationSid: x.ReservationSid,
		TaskSid:        x.TaskSid,
		WorkspaceSid:   x.WorkspaceSid,
		WorkerSid:      x.WorkerSid,
		Rule:           x.Rule,
		Params:         x.Params,
		Received:       x.Received,
		Due:            x.Due,
		Deadline:       x.Deadline,
	})
}

func (a outboxAdapter) Unauthorized() bool { return a.o.Unauthorized() }
