// Package event is the vocabulary of a run's events, defined once: the
// engine emits them, the journal stores them, and every reader (flow status,
// flow report, flow resume, the progress view, saved plans, benchmarks)
// reads them by these names. It imports nothing, so every package can use it.
package event

// The run.
const (
	// Header is the journal's first record: playbook, parameters, operator.
	Header = "run_header"
	// RunStarted is the engine's start of a run (or of a resumed attempt).
	RunStarted = "run_started"
	// RunResumed opens a later attempt of the same run (flow resume).
	RunResumed = "run_resumed"
	// RunFinished is the engine's end of a run with its status.
	RunFinished = "run_finished"
	// RunExit is the journal's last record: final status and exit code.
	RunExit = "run_exit"
)

// Steps.
const (
	StepStarted  = "step_started"
	StepFinished = "step_finished"
	StepSkipped  = "step_skipped"
	StepRefused  = "step_refused"
	StepFailed   = "step_failed"
	// StepRestored is a step a resumed attempt took from the journal.
	StepRestored = "step_restored"
	// StepDispatched is a state-changing step about to send its change:
	// past it, the change may have happened (points of no return count
	// from here, not from the step's start).
	StepDispatched = "step_dispatched"
	// StepNote is a durable fact a step type records while it runs.
	StepNote = "step_note"
	// StepProgress is a wait's or a clone's progress (not journaled).
	StepProgress = "step_progress"
	// StepResumeDecision is how resume judged an interrupted step.
	StepResumeDecision = "step_resume_decision"
	// StepJoined is work of an earlier attempt that resume joined.
	StepJoined = "step_joined"
	// Statement is a statement or command exactly as sent (masked).
	Statement = "statement"
)

// The operator and the safety nets.
const (
	// Confirmation is the operator's answer at a confirmation point:
	// outcome confirmed/declined/refused/interrupted, how (typed, --yes,
	// an earlier attempt), the word, the operator.
	Confirmation = "confirmation"
	// Signal is a signal flow received (SIGINT, SIGTERM, SIGHUP) and what
	// it did.
	Signal = "signal"
	// Log is a log line (level, message), for the audit record.
	Log = "log"
	// Summary is a fact a playbook states for the run's summary (a log
	// step with summary: true).
	Summary = "summary"
	// LockTaken and LockReleased are the run's server-side lock.
	LockTaken    = "lock_taken"
	LockReleased = "lock_released"
	// RescueStarted, RescueFinished, RescueFailed and RescueSkipped are a
	// step's rescue section; skipped when nothing changed inside the step.
	RescueStarted  = "rescue_started"
	RescueFinished = "rescue_finished"
	RescueFailed   = "rescue_failed"
	RescueSkipped  = "rescue_skipped"
	// Undo and rollback (flow rollback).
	UndoStarted      = "undo_started"
	UndoFinished     = "undo_finished"
	RollbackStarted  = "rollback_started"
	RollbackFinished = "rollback_finished"
)

// Step types' own events (engine.Exec.Event): the milestones and progress
// of long steps, for tooling.
const (
	// GTIDWaitStarted, GTIDWaitProgress and GTIDWaitDone are a wait-gtid
	// step's wait: what is missing, the rate it is applied at, the end.
	GTIDWaitStarted  = "gtid_wait_started"
	GTIDWaitProgress = "gtid_wait_progress"
	GTIDWaitDone     = "gtid_wait_done"
	// CloneStarted, CloneProgress and CloneFinished are a clone step's
	// clone: donor, stage and bytes, outcome.
	CloneStarted  = "clone_started"
	CloneProgress = "clone_progress"
	CloneFinished = "clone_finished"
	// RedoWritten is a redo step's file written.
	RedoWritten = "redo_written"
)

// Transient events go to the event stream and observers, not the journal.
var Transient = map[string]bool{StepProgress: true}

// Durable events are fsynced to the journal before the run goes on,
// whatever the step.
var Durable = map[string]bool{RunStarted: true, RunFinished: true, StepNote: true,
	RescueStarted: true, RescueFinished: true, RescueFailed: true, RescueSkipped: true,
	UndoStarted: true, UndoFinished: true, RollbackStarted: true, RollbackFinished: true,
	StepRestored: true, StepResumeDecision: true, StepJoined: true, StepDispatched: true,
	Confirmation: true, Signal: true, Summary: true, LockTaken: true, LockReleased: true}
