package cases

import "strings"

// maxDiffCells bounds the work of LineDiff: past it the two texts are shown whole, one
// removed and one added, which is still a correct diff.
const maxDiffCells = 1 << 20

// LineDiff is a line diff of two texts: every line of both, in order, each starting with
// "- " (only in a), "+ " (only in b) or "  " (in both). Lines in both are those of a longest
// common subsequence, so that what changed is shown and nothing else.
func LineDiff(a, b string) string {
	x := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	y := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	var out strings.Builder
	emit := func(prefix string, lines ...string) {
		for _, l := range lines {
			out.WriteString(prefix)
			out.WriteString(l)
			out.WriteByte('\n')
		}
	}
	if len(x)*len(y) > maxDiffCells {
		emit("- ", x...)
		emit("+ ", y...)
		return out.String()
	}
	// lcs[i][j] is the length of a longest common subsequence of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i] == y[j]:
			emit("  ", x[i])
			i, j = i+1, j+1
		case lcs[i+1][j] >= lcs[i][j+1]:
			emit("- ", x[i])
			i++
		default:
			emit("+ ", y[j])
			j++
		}
	}
	emit("- ", x[i:]...)
	emit("+ ", y[j:]...)
	return out.String()
}
