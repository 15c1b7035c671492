// Package typo finds the word a typo most likely meant, for the "did you mean" of
// messages about rules, cases, flags and commands.
package typo

import "strings"

// maxEdits is the most edits a typo may be from the word it meant: more, and the suggestion
// is a guess that misleads more often than it helps.
const maxEdits = 2

// Closest returns the word of valid nearest to got, ignoring case, or "" when none is within
// two edits. On a tie the earlier word wins.
func Closest(got string, valid []string) string {
	best, bestD := "", maxEdits+1
	lower := strings.ToLower(got)
	for _, v := range valid {
		if d := Distance(lower, strings.ToLower(v)); d < bestD {
			best, bestD = v, d
		}
	}
	return best
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
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
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
