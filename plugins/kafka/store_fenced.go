package kafka

import "fmt"

// FencedError is the error of a Save, or of a Claim, under a key that
// another store has claimed after this one: whatever this store writes
// under the key is never read.
type FencedError struct {
	// claim is this store's claim of the key, by the newer claim.
	claim, by claimID
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("fenced: this store's claim %s was superseded by claim %s", e.claim, e.by)
}

// Fenced reports true, so that callers can tell a fence from other
// failures without naming this type.
func (e *FencedError) Fenced() bool { return true }

// ownClaim is a claim this store made. The tail sets fencedAt.
type ownClaim struct {
	id claimID
	// set is the chunk set of the newest value written under the claim.
	set int
	// fencedAt is the first manifest of a higher claim, or nowhere.
	fencedAt position
}

// holds reports whether the manifest at at, which the tail has read, was
// written while the claim held: before the first manifest of a higher
// claim. Readers take that manifest as the value, and a higher claim
// carries it over.
func (o *ownClaim) holds(at position) bool {
	return o.fencedAt == nowhere || (o.fencedAt.partition == at.partition && at.offset < o.fencedAt.offset)
}
