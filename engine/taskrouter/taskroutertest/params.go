package taskroutertest

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The facts below are hand-copied from Twilio's OpenAPI description of
// TaskRouter v1 (twilio-oai, spec/json/twilio_taskrouter_v1.json), operations
// UpdateTaskReservation and UpdateWorkerReservation, request body
// UpdateTaskReservationRequest. Where the OpenAPI leaves a value free but
// Twilio's prose documents a closed set, the prose is cited beside the table.

// Path SID patterns: the Sid, WorkspaceSid, TaskSid and WorkerSid path
// parameters of UpdateTaskReservation / FetchTaskReservation /
// UpdateWorkerReservation / FetchWorkerReservation.
var (
	workspaceSidRE   = regexp.MustCompile(`^WS[0-9a-fA-F]{32}$`)
	taskSidRE        = regexp.MustCompile(`^WT[0-9a-fA-F]{32}$`)
	workerSidRE      = regexp.MustCompile(`^WK[0-9a-fA-F]{32}$`)
	reservationSidRE = regexp.MustCompile(`^WR[0-9a-fA-F]{32}$`)
)

// Enums of UpdateTaskReservationRequest.
var (
	// task_reservation_enum_status.
	reservationStatuses = []string{"pending", "accepted", "rejected", "timeout", "canceled", "rescinded", "wrapping", "completed"}
	// task_reservation_enum_call_status (StatusCallbackEvent items).
	callStatuses = []string{"initiated", "ringing", "answered", "completed"}
	// task_reservation_enum_conference_event (ConferenceStatusCallbackEvent items).
	conferenceEvents = []string{"start", "end", "join", "leave", "mute", "hold", "speaker"}
	// task_reservation_enum_supervisor_mode.
	supervisorModes = []string{"monitor", "whisper", "barge"}
	// format http-method: StatusCallbackMethod, WaitMethod and the other *Method parameters.
	httpMethods = []string{"GET", "POST"}

	// Instruction is a free string in the OpenAPI; the values TaskRouter
	// executes are listed on the Reservations page (docs/taskrouter/api/reservations).
	instructions = []string{"conference", "dequeue", "call", "redirect", "supervise"}
	// DequeueRecord / CallRecord are free strings in the OpenAPI; the
	// assignment-callback page documents record-from-answer and the default
	// do-not-record.
	callRecordModes = []string{"record-from-answer", "do-not-record"}
	// The descriptions of Beep, ConferenceRecord, ConferenceTrim,
	// RecordingChannels, JitterBufferSize and Region list their values.
	beepModes          = []string{"true", "false", "onEnter", "onExit"}
	conferenceRecords  = []string{"true", "false", "record-from-start", "do-not-record"}
	conferenceTrims    = []string{"trim-silence", "do-not-trim"}
	recordingChannels  = []string{"mono", "dual"}
	jitterBufferSizes  = []string{"small", "medium", "large", "off"}
	conferenceRegions  = []string{"us1", "us2", "ie1", "de1", "sg1", "br1", "au1", "jp1"}
	activitySidPattern = regexp.MustCompile(`^WA[0-9a-fA-F]{32}$`)
	callSidPattern     = regexp.MustCompile(`^CA[0-9a-fA-F]{32}$`)
)

// kind is how a parameter's value is checked.
type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindURI
	kindEnum
	kindSid
)

// param is one form parameter of UpdateTaskReservationRequest.
type param struct {
	kind  kind
	group string         // the instruction it belongs to; "status" for ReservationStatus updates
	enum  []string       // kindEnum: allowed values
	sid   *regexp.Regexp // kindSid: the pattern
	list  bool           // an array parameter: sent as repeated keys
	min   int            // kindInt: inclusive bounds, when max > 0
	max   int
}

// Groups a parameter may belong to. Instruction selects the group; without
// Instruction the request is a ReservationStatus update.
const (
	groupStatus     = "status"
	groupDequeue    = "dequeue"
	groupCall       = "call"
	groupRedirect   = "redirect"
	groupConference = "conference"
	groupSupervise  = "supervise"
)

// updateParams is UpdateTaskReservationRequest (operation
// UpdateTaskReservation). UpdateWorkerReservationRequest is the same without
// Supervisor and SupervisorMode.
var updateParams = map[string]param{
	"ReservationStatus": {kind: kindEnum, group: groupStatus, enum: reservationStatuses},
	"WorkerActivitySid": {kind: kindSid, group: groupStatus, sid: activitySidPattern},

	"DequeuePostWorkActivitySid": {kind: kindSid, group: groupDequeue, sid: activitySidPattern},
	"DequeueFrom":                {kind: kindString, group: groupDequeue},
	"DequeueRecord":              {kind: kindEnum, group: groupDequeue, enum: callRecordModes},
	"DequeueTimeout":             {kind: kindInt, group: groupDequeue},
	"DequeueTo":                  {kind: kindString, group: groupDequeue},
	"DequeueStatusCallbackUrl":   {kind: kindURI, group: groupDequeue},
	// Items are free strings in the OpenAPI; error 40134 ("invalid
	// status_callback_events") says they are call-progress events.
	"DequeueStatusCallbackEvent": {kind: kindEnum, group: groupDequeue, enum: callStatuses, list: true},

	"CallFrom":              {kind: kindString, group: groupCall},
	"CallRecord":            {kind: kindEnum, group: groupCall, enum: callRecordModes},
	"CallTimeout":           {kind: kindInt, group: groupCall},
	"CallTo":                {kind: kindString, group: groupCall},
	"CallUrl":               {kind: kindURI, group: groupCall},
	"CallStatusCallbackUrl": {kind: kindURI, group: groupCall},
	"CallAccept":            {kind: kindBool, group: groupCall},

	"RedirectCallSid": {kind: kindSid, group: groupRedirect, sid: callSidPattern},
	"RedirectAccept":  {kind: kindBool, group: groupRedirect},
	"RedirectUrl":     {kind: kindURI, group: groupRedirect},

	"To":                                {kind: kindString, group: groupConference},
	"From":                              {kind: kindString, group: groupConference},
	"StatusCallback":                    {kind: kindURI, group: groupConference},
	"StatusCallbackMethod":              {kind: kindEnum, group: groupConference, enum: httpMethods},
	"StatusCallbackEvent":               {kind: kindEnum, group: groupConference, enum: callStatuses, list: true},
	"Timeout":                           {kind: kindInt, group: groupConference},
	"Record":                            {kind: kindBool, group: groupConference},
	"Muted":                             {kind: kindBool, group: groupConference},
	"Beep":                              {kind: kindEnum, group: groupConference, enum: beepModes},
	"StartConferenceOnEnter":            {kind: kindBool, group: groupConference},
	"EndConferenceOnExit":               {kind: kindBool, group: groupConference},
	"WaitUrl":                           {kind: kindURI, group: groupConference},
	"WaitMethod":                        {kind: kindEnum, group: groupConference, enum: httpMethods},
	"EarlyMedia":                        {kind: kindBool, group: groupConference},
	"MaxParticipants":                   {kind: kindInt, group: groupConference, min: 2, max: 250},
	"ConferenceStatusCallback":          {kind: kindURI, group: groupConference},
	"ConferenceStatusCallbackMethod":    {kind: kindEnum, group: groupConference, enum: httpMethods},
	"ConferenceStatusCallbackEvent":     {kind: kindEnum, group: groupConference, enum: conferenceEvents, list: true},
	"ConferenceRecord":                  {kind: kindEnum, group: groupConference, enum: conferenceRecords},
	"ConferenceTrim":                    {kind: kindEnum, group: groupConference, enum: conferenceTrims},
	"RecordingChannels":                 {kind: kindEnum, group: groupConference, enum: recordingChannels},
	"RecordingStatusCallback":           {kind: kindURI, group: groupConference},
	"RecordingStatusCallbackMethod":     {kind: kindEnum, group: groupConference, enum: httpMethods},
	"ConferenceRecordingStatusCallback": {kind: kindURI, group: groupConference},
	"ConferenceRecordingStatusCallbackMethod": {kind: kindEnum, group: groupConference, enum: httpMethods},
	"Region":                      {kind: kindEnum, group: groupConference, enum: conferenceRegions},
	"SipAuthUsername":             {kind: kindString, group: groupConference},
	"SipAuthPassword":             {kind: kindString, group: groupConference},
	"PostWorkActivitySid":         {kind: kindSid, group: groupConference, sid: activitySidPattern},
	"EndConferenceOnCustomerExit": {kind: kindBool, group: groupConference},
	"BeepOnCustomerEntrance":      {kind: kindBool, group: groupConference},
	"JitterBufferSize":            {kind: kindEnum, group: groupConference, enum: jitterBufferSizes},

	"SupervisorMode": {kind: kindEnum, group: groupSupervise, enum: supervisorModes},
	"Supervisor":     {kind: kindString, group: groupSupervise},
}

// required lists the parameters the Reservations page marks Required for
// each instruction (DequeueFrom is required there although the
// assignment-callback page makes `from` optional).
var required = map[string][]string{
	groupDequeue:  {"DequeueFrom"},
	groupCall:     {"CallFrom", "CallUrl"},
	groupRedirect: {"RedirectCallSid", "RedirectUrl"},
}

// validateUpdate checks an update form the way the fake's contract demands:
// every name known, every value of its type, one value per scalar, and every
// parameter belonging to the instruction the request names. The real API is
// more lenient about names it does not know; the fake refuses them on purpose
// so a misspelt or misplaced parameter fails a test instead of being dropped.
// It returns the group the request selects.
func validateUpdate(form url.Values, workerPath bool) (string, *apiError) {
	group := groupStatus
	if ins, ok := form["Instruction"]; ok {
		if len(ins) != 1 {
			return "", invalid("Instruction must be given once")
		}
		if !slices.Contains(instructions, ins[0]) {
			return "", invalid("Invalid Instruction %q: must be one of %s", ins[0], strings.Join(instructions, ", "))
		}
		if workerPath && ins[0] == groupSupervise {
			return "", invalid("Instruction supervise is not available on a Worker's reservation")
		}
		group = ins[0]
	}
	for _, name := range slices.Sorted(maps.Keys(form)) {
		if name == "Instruction" {
			continue
		}
		p, ok := updateParams[name]
		if !ok || (workerPath && p.group == groupSupervise) {
			return "", invalid("Unknown parameter %s", name)
		}
		if p.group != group {
			if group == groupStatus {
				return "", invalid("Parameter %s requires Instruction=%s", name, p.group)
			}
			return "", invalid("Parameter %s does not apply to Instruction=%s", name, group)
		}
		vals := form[name]
		if !p.list && len(vals) != 1 {
			return "", invalid("Parameter %s must be given once, got %d values", name, len(vals))
		}
		for _, v := range vals {
			if msg := p.check(name, v); msg != "" {
				return "", invalid("%s", msg)
			}
		}
	}
	if group == groupStatus && !form.Has("ReservationStatus") {
		return "", invalid("Either ReservationStatus or Instruction is required")
	}
	for _, name := range required[group] {
		if form.Get(name) == "" {
			return "", invalid("Missing required parameter %s in the post body", name)
		}
	}
	return group, nil
}

// invalid is the 400 the fake answers for a parameter it refuses. Twilio
// answers bad parameters with code 20001 ("Invalid parameter").
func invalid(format string, args ...any) *apiError {
	return &apiError{Status: 400, Code: 20001, Message: fmt.Sprintf(format, args...)}
}

// check validates one value of parameter name and says what is wrong with
// it, or returns "".
func (p param) check(name, v string) string {
	switch p.kind {
	case kindInt:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Sprintf("Invalid %s %q: must be an integer", name, v)
		}
		if p.max > 0 && (n < p.min || n > p.max) {
			return fmt.Sprintf("Invalid %s %d: must be between %d and %d", name, n, p.min, p.max)
		}
	case kindBool:
		if _, ok := parseBool(v); !ok {
			return fmt.Sprintf("Invalid %s %q: must be true or false", name, v)
		}
	case kindURI:
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Sprintf("Invalid %s %q: must be an absolute http(s) URL", name, v)
		}
	case kindEnum:
		if !slices.Contains(p.enum, v) {
			return fmt.Sprintf("Invalid %s %q: must be one of %s", name, v, strings.Join(p.enum, ", "))
		}
	case kindSid:
		if !p.sid.MatchString(v) {
			return fmt.Sprintf("Invalid %s %q: must match %s", name, v, p.sid)
		}
	}
	return ""
}

// parseBool accepts the spellings Twilio's APIs accept for booleans.
func parseBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}
