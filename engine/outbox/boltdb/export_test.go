package boltdb

// Hooks for the tests of package boltdb_test.

// HoldCommits makes every commit wait for hold to return; nil removes the hook.
func HoldCommits(o *Outbox, hold func()) {
	if hold == nil {
		o.store.testHold.Store(nil)
		return
	}
	o.store.testHold.Store(&hold)
}

// FailCommits makes every commit fail with fail's error (a full disk, say) while it returns
// one; nil removes the hook.
func FailCommits(o *Outbox, fail func() error) {
	if fail == nil {
		o.store.testFail.Store(nil)
		return
	}
	o.store.testFail.Store(&fail)
}
