// Package postgres is the shared outbox: every replica that names the same PostgreSQL
// database stores its pending actions there and carries out any of them, so that a rolling
// deploy or a lost pod loses nothing and no reservation is acted on twice by different
// replicas (docs/outbox.md).
//
// It is built on River (github.com/riverqueue/river), a job queue for PostgreSQL, rather than
// on a queue of its own: an action is a River job whose args are the Action's JSON, unique by
// ReservationSid in every job state. The worker carries a due job out through the
// outbox.Carrier, as the embedded backend does, and tells River what follows: done (nil),
// wait (JobSnooze, which River does not count as an attempt: delays, Retry-After and backoff
// alike) or finished for good (JobCancel: final errors, the deadline). NOTES.md says which
// River settings this needs and why, with the measurements; the tests beside it hold River to
// them.
//
// One thing River does not do often enough is handled here (rescue.go): taking back an
// action whose replica died in the middle of its REST call.
package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/reservist/reservist/engine/outbox"
)

// River settings, measured in NOTES.md.
const (
	// kind and queueName set the outbox's jobs apart from any other River jobs in the same
	// database: only its own are fetched, counted and rescued.
	kind      = "reservist_action"
	queueName = "reservist"
	// pollInterval is how often each replica looks for due jobs besides River's
	// notifications of new ones: a due delayed action runs at most this late.
	pollInterval = 100 * time.Millisecond
	// fetchCooldown is the shortest time between two fetches of a replica. A fetch takes as
	// many due jobs as there are free workers, so while a backlog lasts this bounds how fast
	// a replica carries it out; River's default (100 ms) lets 8 workers take at most 8 jobs a
	// tenth of a second, however fast TaskRouter answers (TestCarryOutRate, NOTES.md).
	fetchCooldown = 10 * time.Millisecond
	// jobTimeout bounds one attempt (one REST call; the sender's own timeout is shorter).
	jobTimeout = 15 * time.Second
	// rescueAfter is how long a job may be running before it is taken for one held by a
	// replica that died mid-call. River requires it to be at least jobTimeout, since a live
	// replica may still be in the call until then.
	rescueAfter = 20 * time.Second
	// maxSnooze is the longest wait the worker asks River for. River puts a job snoozed for
	// no longer than its scheduler's interval (5 s) straight back to available with its new
	// run time, where any replica's producer picks it up when due; a longer snooze makes it
	// scheduled, and only the leader moves scheduled jobs, so it would wait for a leader (15 s
	// or more after a leader dies).
	maxSnooze = 4 * time.Second
	// migrateLockKey names the advisory lock held around migrations (the bytes of
	// "reservis"), well away from the keys River hashes its own locks to.
	migrateLockKey int64 = 0x7265736572766973
)

// uniqueForever is the uniqueness of an outbox job: by ReservationSid alone (the one field
// of the args tagged unique), in every state, finished ones included, so that a callback
// repeated after its action ended (completed, cancelled for a final error or the deadline)
// queues nothing. The refusal lasts as long as River keeps the row: a day for completed and
// cancelled jobs, a week for discarded ones, past any reservation's deadline.
var uniqueForever = river.UniqueOpts{ByArgs: true, ByState: rivertype.JobStates()}

// Defaults for Options.
const (
	// DefaultPutTimeout bounds a Put whose context has no deadline, so that a database that
	// stopped answering cannot hold a callback past TaskRouter's patience.
	DefaultPutTimeout = 2 * time.Second
	// DefaultStartTimeout bounds the first attempt at the database in Open.
	DefaultStartTimeout = 5 * time.Second
	// defaultMaxConns is the pool size unless the URL sets pool_max_conns: River holds one
	// connection for notifications and takes others to fetch and complete jobs; the rest
	// serve concurrent Puts.
	defaultMaxConns = 16
)

// How often the outbox checks on the database, and how long it gives a check.
const (
	probeInterval = time.Second
	probeTimeout  = 2 * time.Second
	// migrateTimeout bounds a migration the probe retries: it may wait for another replica's
	// lock, and River's migrations on a slow server take longer than a ping.
	migrateTimeout = 30 * time.Second
	// hardStop bounds the wait for River once the calls in flight have been cancelled.
	hardStop = 5 * time.Second
)

// Options configure an Outbox.
type Options struct {
	// Carrier makes the attempts; required.
	Carrier *outbox.Carrier
	// Concurrency is the most attempts in flight at once in this process; default
	// outbox.DefaultConcurrency.
	Concurrency int
	// Drain is how long Run lets calls in flight finish once its context is done; default
	// outbox.DefaultDrain.
	Drain time.Duration
	// PutTimeout bounds a Put whose context has no deadline; default DefaultPutTimeout.
	PutTimeout time.Duration
	// StartTimeout bounds Open's first attempt at the database; default
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// ID names this process in River's tables (the leader, who attempted a job); default
	// River's, the host name and the time.
	ID string

	fetchCooldown time.Duration // tests: River's FetchCooldown; default fetchCooldown
}

// Outbox is the shared outbox.
type Outbox struct {
	pool    *pgxpool.Pool
	conn    *pgx.ConnConfig // for the probe's own connection
	client  *river.Client[pgx.Tx]
	carrier *outbox.Carrier
	log     *slog.Logger
	clock   outbox.Clock
	drain   time.Duration
	putTO   time.Duration

	// health is the store's, as the embedded backend's: every failed operation is counted
	// and makes Ready fail until one works again.
	health *outbox.StoreHealth
	// down is set while the probe finds the database unusable: Put fails at once, and
	// River's log lines are held back (see riverLog).
	down       atomic.Bool
	recheck    chan struct{} // wakes the probe at once: River has just logged an error
	withdrawer *withdrawer
	migrated   chan struct{} // closed once the schema is known to be current
	stopping   atomic.Bool   // Run is draining: start no attempt

	probeStop context.CancelFunc
	probeDone chan struct{}
	probeConn *pgx.Conn // owned by the probe goroutine

	life outbox.Lifecycle
}

var _ outbox.Outbox = (*Outbox)(nil)

// Open connects to the database at url (libpq's PG* variables fill in what the URL leaves
// out) and creates or upgrades the outbox's schema under an advisory lock, so that replicas
// starting together take turns.
//
// When the database cannot be reached (no connection, a timeout, a server still starting),
// Open does not fail: the outbox starts unready, Ready and Put say why, and it keeps trying
// in the background and becomes ready by itself. A refusal by the database itself (a wrong
// password, no such database, no right to create the schema) is an error, since waiting
// will not fix it.
func Open(url string, opts Options) (*Outbox, error) {
	if opts.Carrier == nil {
		return nil, errors.New("outbox: no carrier")
	}
	cfg, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = outbox.DefaultConcurrency
	}
	o := &Outbox{
		conn:     cfg.ConnConfig.Copy(),
		carrier:  opts.Carrier,
		log:      opts.Carrier.Logger(),
		clock:    opts.Carrier.Clock(),
		drain:    opts.Drain,
		putTO:    opts.PutTimeout,
		migrated: make(chan struct{}),
		recheck:  make(chan struct{}, 1),
		health:   outbox.NewStoreHealth(opts.Carrier.Metrics(), opts.Carrier.Logger()),
	}
	if o.drain <= 0 {
		o.drain = outbox.DefaultDrain
	}
	if o.putTO <= 0 {
		o.putTO = DefaultPutTimeout
	}
	startTO := opts.StartTimeout
	if startTO <= 0 {
		startTO = DefaultStartTimeout
	}
	if o.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil { // connects lazily
		return nil, fmt.Errorf("outbox: %w", err)
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{o: o}); err != nil {
		o.pool.Close()
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o.client, err = river.NewClient(riverpgxv5.New(o.pool), &river.Config{
		ID:                   opts.ID,
		FetchCooldown:        cmp.Or(opts.fetchCooldown, fetchCooldown),
		FetchPollInterval:    pollInterval,
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: rescueAfter,
		Logger:               slog.New(riverLog{o.log.Handler().WithAttrs([]slog.Attr{slog.String("component", "river")}), &o.down, o.recheck}),
		Queues:               map[string]river.QueueConfig{queueName: {MaxWorkers: concurrency}},
		Workers:              workers,
	})
	if err != nil {
		o.pool.Close()
		return nil, fmt.Errorf("outbox: %w", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTO)
	err = o.migrate(ctx)
	cancel()
	if err != nil && Refused(err) {
		o.pool.Close()
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42501" { // insufficient_privilege
			err = fmt.Errorf("%w: this database user may not create the outbox's tables; run `reservist migrate --outbox URL` once as a user that may", err)
		}
		return nil, err
	}
	o.checked(err)

	ctx, o.probeStop = context.WithCancel(context.Background())
	o.probeDone = make(chan struct{})
	go o.probe(ctx)
	o.withdrawer = newWithdrawer(o)
	return o, nil
}

// Shared marks the outbox as one that every replica shares: /readyz names its state, "ok" or
// "unreachable", even while it is fine.
func (o *Outbox) Shared() bool { return true }

// Put stores an action for its reservation; it returns once the insert has committed.
// queued is false, and nothing changes, when the outbox holds a job for the same
// ReservationSid already, in whatever state. A ctx without a deadline is given the Put
// timeout. While the database is known to be unreachable Put fails at once, with an error
// wrapping outbox.ErrUnreachable. A failed insert that committed after all is withdrawn
// (see withdrawer).
func (o *Outbox) Put(ctx context.Context, a outbox.Action) (queued bool, err error) {
	if err := a.Validate(); err != nil {
		return false, err
	}
	if o.life.Closed() {
		return false, outbox.ErrClosed
	}
	if o.down.Load() {
		err := fmt.Errorf("%w: its last check failed", outbox.ErrUnreachable)
		o.health.Failed(outbox.StoreOpPut, err)
		return false, err
	}
	if a.Received.IsZero() {
		a.Received = o.clock.Now()
	}
	if a.Due.IsZero() {
		a.Due = a.Received
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.putTO)
		defer cancel()
	}
	token := rand.Text()
	res, err := o.client.Insert(ctx, newJob(a), &river.InsertOpts{Metadata: putMetadata(token)})
	if err != nil {
		err = fmt.Errorf("%w: storing the action: %v", outbox.ErrUnreachable, err)
		o.health.Failed(outbox.StoreOpPut, err)
		o.withdrawer.add(a, token)
		return false, err
	}
	o.health.Worked()
	return !res.UniqueSkippedAsDuplicate, nil
}

// pendingStates are the River states of a job not yet finished.
var pendingStates = []string{
	string(rivertype.JobStateAvailable), string(rivertype.JobStatePending), string(rivertype.JobStateRetryable),
	string(rivertype.JobStateRunning), string(rivertype.JobStateScheduled),
}

// statsSQL counts the whole shared outbox's pending actions and finds the oldest one's
// callback time. It reads River's job table directly (River counts by state, not by kind);
// TestStatsHoldsToRiversSchema holds it to River's schema.
const statsSQL = `SELECT count(*), min((args->>'received')::timestamptz)
FROM river_job WHERE kind = $1 AND queue = $2 AND state = ANY($3::river_job_state[])`

// Stats says how many actions are pending in the whole shared outbox, in flight or waiting,
// on any replica, and when the oldest of them was received.
func (o *Outbox) Stats(ctx context.Context) (outbox.Stats, error) {
	var st outbox.Stats
	var oldest *time.Time
	if err := o.pool.QueryRow(ctx, statsSQL, kind, queueName, pendingStates).Scan(&st.Depth, &oldest); err != nil {
		return outbox.Stats{}, fmt.Errorf("outbox: %w", err)
	}
	if oldest != nil {
		st.Oldest = *oldest
	}
	return st, nil
}

// Ready is nil while the store works: the database can be reached, holds the outbox's
// schema, and its last operation (a check or a Put) worked. Its error wraps
// outbox.ErrUnreachable otherwise, or is outbox.ErrClosed after Close. It reports what the
// last operation found and never waits for the database.
func (o *Outbox) Ready() error {
	if o.life.Closed() {
		return outbox.ErrClosed
	}
	return o.health.Err()
}

// Unauthorized reports whether TaskRouter has refused a REST call with 401 or 403.
func (o *Outbox) Unauthorized() bool { return o.carrier.Unauthorized() }

// Run carries out due actions, this replica's and every other's, until ctx is done or the
// outbox is closed, then lets the calls in flight finish for up to the drain and returns
// nil. A call cut off then stays pending and another replica (or the next Run) takes it;
// sent again, it is refused as no longer pending. While the schema is not there yet (the
// database was unreachable at Open) Run waits for it.
func (o *Outbox) Run(ctx context.Context) error {
	ctx, end, err := o.life.Begin(ctx)
	if err != nil {
		return err
	}
	defer end()

	select {
	case <-o.migrated:
	case <-ctx.Done():
		return nil
	}
	o.stopping.Store(false)
	// River's work outlives ctx: its end is where the drain starts, not where calls are
	// cut off.
	if !o.start(ctx, context.WithoutCancel(ctx)) {
		return nil
	}
	rescued := make(chan struct{})
	go func() {
		defer close(rescued)
		o.rescueLoop(ctx)
	}()
	<-ctx.Done()
	<-rescued

	// Attempts that River has fetched but not started put their jobs back (the worker sees
	// stopping); those in flight get the drain, then their contexts are cancelled. A real
	// timer: the drain bounds a shutdown, it does not schedule actions.
	o.stopping.Store(true)
	drain, cancelDrain := context.WithTimeout(context.Background(), o.drain)
	err = o.client.Stop(drain)
	cancelDrain()
	if err != nil {
		hard, cancelHard := context.WithTimeout(context.Background(), hardStop)
		if err := o.client.StopAndCancel(hard); err != nil {
			o.log.Warn("outbox: River did not stop in time", slog.Any("error", err))
		}
		cancelHard()
	}
	return nil
}

// start starts River's client, trying again while the database cannot be reached; it
// reports false when ctx ends first.
func (o *Outbox) start(ctx, work context.Context) bool {
	var last string
	for {
		err := o.client.Start(work)
		if err == nil {
			return true
		}
		if msg := err.Error(); msg != last {
			last = msg
			o.log.Error("outbox cannot start carrying out actions; trying again", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(probeInterval):
		}
	}
}

// Close stops Run, waits for it to return, and releases the database connections. Pending
// actions stay in the database.
func (o *Outbox) Close() error {
	if !o.life.Close() {
		return nil
	}
	o.probeStop()
	<-o.probeDone
	o.withdrawer.close()
	// pgxpool waits for every connection to come back; River, stopped, has returned them,
	// but a client that did not stop in time may still hold one.
	closed := make(chan struct{})
	go func() {
		o.pool.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(hardStop):
		o.log.Warn("outbox: database connections still in use at close")
	}
	return nil
}

// migrate creates or upgrades the schema, once; later calls do nothing.
func (o *Outbox) migrate(ctx context.Context) error {
	select {
	case <-o.migrated:
		return nil
	default:
	}
	applied, err := migrateLocked(ctx, o.pool)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		o.log.Info("outbox schema created or upgraded", slog.Any("versions", applied))
	}
	close(o.migrated)
	return nil
}

// probe checks the database every probeInterval until ctx ends: migrating while the schema
// is not known to be current, else pinging on a connection of its own (a pool busy with
// Puts must not make a reachable database look unreachable).
func (o *Outbox) probe(ctx context.Context) {
	defer close(o.probeDone)
	defer func() {
		if o.probeConn != nil {
			o.probeConn.Close(context.Background())
		}
	}()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-o.recheck:
		}
		check, cancel := context.WithTimeout(ctx, migrateTimeout)
		err := o.migrate(check)
		cancel()
		if err == nil {
			check, cancel = context.WithTimeout(ctx, probeTimeout)
			err = o.ping(check)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		o.checked(err)
	}
}

func (o *Outbox) ping(ctx context.Context) error {
	if o.probeConn == nil || o.probeConn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, o.conn)
		if err != nil {
			return err
		}
		o.probeConn = conn
	}
	if err := o.probeConn.Ping(ctx); err != nil {
		o.probeConn.Close(context.Background())
		o.probeConn = nil
		return err
	}
	return nil
}

// checked records what the last check of the database found, in the store's health (which
// logs when it starts failing and when it works again).
func (o *Outbox) checked(err error) {
	if err == nil {
		o.down.Store(false)
		o.health.Worked()
		return
	}
	o.down.Store(true)
	o.health.Failed(outbox.StoreOpCheck, fmt.Errorf("%w: %v", outbox.ErrUnreachable, err))
}

// riverLog is River's logger: its lines at warn and above, and none while the database is
// known to be unreachable, when River logs every failed poll of every component and
// reservist has said once what is wrong. An error from River has the probe look at once,
// which is how a lost database is usually noticed first.
type riverLog struct {
	slog.Handler
	quiet   *atomic.Bool // the outbox's down
	recheck chan<- struct{}
}

func (r riverLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && !r.quiet.Load() && r.Handler.Enabled(ctx, l)
}

func (r riverLog) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelError {
		select {
		case r.recheck <- struct{}{}:
		default:
		}
	}
	return r.Handler.Handle(ctx, rec)
}

func (r riverLog) WithAttrs(as []slog.Attr) slog.Handler {
	return riverLog{r.Handler.WithAttrs(as), r.quiet, r.recheck}
}

func (r riverLog) WithGroup(name string) slog.Handler {
	return riverLog{r.Handler.WithGroup(name), r.quiet, r.recheck}
}

// Refused reports whether err is the database's own refusal, which waiting will not fix: a
// wrong user or password (SQLSTATE class 28), no such database (3D), no right to do what the
// migration does, or SQL the server does not take (42), or a certificate that does not
// verify. Anything else (no connection, a timeout, a server starting up or shutting down, too
// many connections) is taken for the database being unreachable for now.
func Refused(err error) bool {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return strings.HasPrefix(pe.Code, "28") || strings.HasPrefix(pe.Code, "3D") || strings.HasPrefix(pe.Code, "42")
	}
	return isCertificateError(err)
}
