package main

import "runtime/debug"

// buildVersion is set at link time by release builds: -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = ""

// version says which build this is: the linked version, else the module version and VCS
// revision Go recorded, else "devel".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + info.GoVersion
}
