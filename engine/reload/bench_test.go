package reload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigRules is a rules file with n rules of the usual shapes: plain accepts, rejects with a
// literal SID, and dequeues with templates.
func bigRules(n int) string {
	var b strings.Builder
	b.WriteString("version: 1\nvars:\n  busy: WAfedcba9876543210fedcba9876543210\n  line: \"+15005550006\"\nrules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: rule-%d\n", i)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "    when: task.attributes.queue == \"q%d\" && task.priority > %d\n    do: accept\n", i, i%10)
		case 1:
			fmt.Fprintf(&b, "    when: (worker.attributes.open_chats ?? 0) >= %d && task.attributes.channel in [\"chat\", \"sms\"]\n    do: reject\n    with:\n      activity_sid: ${ vars.busy }\n", i)
		case 2:
			fmt.Fprintf(&b, "    when: task.attributes.customer?.tier == \"t%d\"\n    do: dequeue\n    with:\n      from: ${ vars.line }\n      to: ${ worker.attributes.contact_uri }\n      timeout: 20\n", i)
		}
	}
	b.WriteString("default:\n  do: defer\n")
	return b.String()
}

// BenchmarkReload5000 reads, parses, compiles and swaps in a 5,000-rule file; every
// iteration loads a different revision, so none is skipped as unchanged.
func BenchmarkReload5000(b *testing.B) {
	content := bigRules(5000)
	r, path := newReloader(b, content, Options{})
	variants := []string{content + "# a\n", content + "# b\n"}
	tmp := filepath.Join(filepath.Dir(path), "next.yaml")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		if err := os.WriteFile(tmp, []byte(variants[i%2]), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		i++
		b.StartTimer()
		if err := r.Reload("bench"); err != nil {
			b.Fatal(err)
		}
	}
	if got := len(r.Current().Engine.Set().Rules); got != 5000 {
		b.Fatalf("serving %d rules; want 5000", got)
	}
}
