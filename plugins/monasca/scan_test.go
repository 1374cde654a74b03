package monasca

import (
	"strings"
	"testing"
)

// TestPlainRun compares the 8-bytes-at-a-time scan with a byte-by-byte one
// for every byte value, and every pair of adjacent byte values, at positions
// inside and across 8-byte words.
func TestPlainRun(t *testing.T) {
	naive := func(s string, j int) int {
		for j < len(s) && plain[s[j]] {
			j++
		}
		return j
	}
	check := func(s string, j int) {
		if got, want := plainRun(s, j), naive(s, j); got != want {
			t.Fatalf("plainRun(%q, %d) = %d, want %d", s, j, got, want)
		}
	}
	pad := strings.Repeat("a", 20)
	for c := range 256 {
		for p := range 18 {
			s := pad[:p] + string([]byte{byte(c)}) + pad[p:]
			check(s, 0)
			check(s, 1)
		}
	}
	for _, p := range []int{0, 6, 7, 13} {
		for c1 := range 256 {
			for c2 := range 256 {
				check(pad[:p]+string([]byte{byte(c1), byte(c2)})+pad[p:], 0)
			}
		}
	}
}
