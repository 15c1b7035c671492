// Package typo finds the word a typo most likely meant, for the "did you mean" of
// messages about rules, cases, flags and commands.
package typo

import "strings"

// maxEdits is the most edits a typo may be from the word it meant: more, and the suggestion
// is a guess that misleads more often than it helps.
const maxEdits = 2

// Closest returns the word of valid nearest to got, ignoring case, or "" when none is within
// two edits, or when the edits would be half of got or more (x is one edit from v, and
// nothing says it meant v). On a tie the earlier word wins.
func Closest(got string, valid []string) string {
	best, bestD := "", maxEdits+1
	lower := strings.ToLower(got)
	for _, v := range valid {
		if d := Distance(lower, strings.ToLower(v)); d < bestD && 2*d < len(got) {
			best, bestD = v, d
		}
	}
	return best
}

// Distance is the edit distance between a and b, in bytes: insertions, deletions,
// substitutions and transpositions of neighbours (wehn for when) count one each (the optimal
// string alignment distance).
func Distance(a, b string) int {
	// Three rows: the one before the previous one, for transpositions.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
