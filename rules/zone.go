package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	// The tz database is built into every program that reads rules files, so that zones
	// load in an image without one (scratch, distroless) just as on a laptop.
	_ "time/tzdata"
)

// zoneExamples end every message about a zone: what a right name looks like.
const zoneExamples = "names come from the tz database, like America/New_York, Europe/London or UTC"

// loadZone resolves a zone name of the file. A name is valid when the tz database that Go
// embeds has it (zoneNames), so that a file is valid or not whatever the host's own
// database holds; "Local", the host's zone, is refused for the same reason. The message
// says what is wrong and, for a near miss, which zone was meant.
func loadZone(name string) (*time.Location, string) {
	switch {
	case name == "":
		return nil, "the time zone is empty; " + zoneExamples
	case name == "Local":
		return nil, `"Local" is the host's time zone, which differs from machine to machine; name the zone, like America/New_York or UTC`
	}
	if _, found := slices.BinarySearch(zoneNames, name); !found {
		msg := fmt.Sprintf("unknown time zone %q", name)
		if s := suggestZone(name); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		return nil, msg + "; " + zoneExamples
	}
	loc, err := time.LoadLocation(name)
	if err != nil { // listed but not loadable: the embedded database is always there
		return nil, fmt.Sprintf("time zone %q cannot be loaded: %v", name, err)
	}
	return loc, ""
}

// suggestZone finds the zone a misspelt name most likely means: the same name in other
// case or with spaces for underscores, else the closest name by edit distance, or, for a
// name without a region (New_York), the zone whose city it is.
func suggestZone(name string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", "_")) }
	want := norm(name)
	if want == "" {
		return ""
	}
	city := !strings.Contains(want, "/")
	best, bestD := "", max(2, len(want)/5)+1
	for _, z := range zoneNames {
		cand := norm(z)
		if cand == want {
			return z
		}
		d := distance(want, cand)
		if city {
			if i := strings.LastIndexByte(cand, '/'); i >= 0 {
				d = min(d, distance(want, cand[i+1:]))
			}
		}
		if d < bestD {
			best, bestD = z, d
		}
	}
	return best
}
