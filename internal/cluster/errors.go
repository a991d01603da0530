package cluster

import "errors"

// Errors of a replicated engine, beside the storage sentinels it also
// returns. Test with errors.Is.
var (
	// ErrNoLeader is returned when no leader could be reached within the
	// request's time: the write or linearizable read was not served. It is
	// safe to retry.
	ErrNoLeader = errors.New("no cluster leader is reachable")
	// ErrUnknownOutcome is returned when a write was handed to the leader but
	// its answer was lost (leadership changed, connection dropped, timeout):
	// the write may or may not have been applied. Read the key to find out.
	ErrUnknownOutcome = errors.New("the write's outcome is unknown: it may or may not have been applied")
	// ErrStopped is returned by every call after the node stopped itself
	// because its engine failed to apply a committed entry; restart the node.
	ErrStopped = errors.New("cluster node stopped after an engine failure")
	// ErrNotVoter is returned for membership changes that name an unknown node.
	ErrNotVoter = errors.New("no such cluster member")
)
