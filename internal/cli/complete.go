package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// shells are the shells `reservist completion` writes scripts for.
var shells = []string{"bash", "zsh", "fish"}

// The scripts are generated from the same command table and flag sets that parse the
// command line, so that a new flag or command is completed without anyone editing a script.
// They are static: completing never runs reservist.

// compFlag is a flag as completion sees it.
type compFlag struct {
	name  string   // without dashes
	value bool     // takes a value
	files bool     // the value is a file
	dirs  bool     // the value is a directory
	words []string // the value is one of these
	doc   string   // a short description
}

// compCmd is a command as completion sees it.
type compCmd struct {
	name, summary string
	flags         []compFlag
	ops           Operands
}

// model is every command with its flags, for the scripts.
func (p *Program) model(w io.Writer) []compCmd {
	var out []compCmd
	cmds := p.all(w)
	for _, c := range cmds {
		fs, _ := c.flags()
		cc := compCmd{name: c.Name, summary: c.Summary, ops: c.Operands}
		fs.VisitAll(func(f *flag.Flag) {
			cf := compFlag{name: f.Name, value: !isBool(f), doc: shortDoc(f)}
			if ch, ok := f.Value.(*Choice); ok {
				cf.words = ch.Allowed
			} else if name, _ := flag.UnquoteUsage(f); name == "file" {
				cf.files = true
			} else if name == "directory" {
				cf.dirs = true
			}
			cc.flags = append(cc.flags, cf)
		})
		if c.Operands.Commands {
			for _, o := range cmds {
				cc.ops.Words = append(cc.ops.Words, o.Name)
			}
		}
		out = append(out, cc)
	}
	return out
}

// shortDoc is a flag's usage up to its first comma, semicolon, colon or parenthesis: a
// description that fits beside it in a completion menu.
func shortDoc(f *flag.Flag) string {
	_, usage := flag.UnquoteUsage(f)
	if i := strings.IndexAny(usage, ",;:("); i > 0 {
		usage = usage[:i]
	}
	return strings.TrimSpace(usage)
}

// completion returns the completion script for a shell.
func (p *Program) completion(shell string, w io.Writer) (string, error) {
	cmds := p.model(w)
	switch shell {
	case "bash":
		return bashScript(cmds, p.Default), nil
	case "zsh":
		return zshScript(cmds, p.Default), nil
	case "fish":
		return fishScript(cmds, p.Default), nil
	}
	return "", fmt.Errorf("no completion for %q: give %s", shell, orList(shells))
}

// commandNames are the commands' names, space-separated.
func commandNames(cmds []compCmd) string {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.name
	}
	return strings.Join(names, " ")
}

func bashScript(cmds []compCmd, def string) string {
	var b strings.Builder
	b.WriteString(`# bash completion for reservist. Load it with: source <(reservist completion bash)
# or save it as ~/.local/share/bash-completion/completions/reservist.

# _reservist_compgen sets COMPREPLY to compgen's words, one a line, as they are: a file name
# with spaces or a * in it stays one word.
_reservist_compgen() {
    local line
    COMPREPLY=()
    while IFS= read -r line; do
        COMPREPLY+=("$line")
    done < <(compgen "$@")
}

_reservist() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local flag=$prev cmd=` + def + `
    # bash splits --flag=value at the =.
    if [[ $cur == = ]]; then
        cur=""
    elif [[ $prev == = && COMP_CWORD -ge 3 ]]; then
        flag=${COMP_WORDS[COMP_CWORD-2]}
    fi
    if ((COMP_CWORD == 1)) && [[ $cur != -* ]]; then
        _reservist_compgen -W "` + commandNames(cmds) + `" -- "$cur"
        return
    fi
    # The command is the first word; flags first are the default command's.
    if ((COMP_CWORD > 1)) && [[ ${COMP_WORDS[1]} != -* ]]; then
        cmd=${COMP_WORDS[1]}
    fi
    case $cmd in
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, "    %s)\n        case $flag in\n", c.name)
		var names []string
		for _, f := range c.flags {
			names = append(names, dashed(f.name))
			if !f.value {
				continue
			}
			fmt.Fprintf(&b, "        %s | -%s)\n", dashed(f.name), f.name)
			switch {
			case f.files:
				b.WriteString("            compopt -o filenames 2>/dev/null\n            _reservist_compgen -f -- \"$cur\"\n")
			case f.dirs:
				b.WriteString("            compopt -o filenames 2>/dev/null\n            _reservist_compgen -d -- \"$cur\"\n")
			case len(f.words) > 0:
				fmt.Fprintf(&b, "            _reservist_compgen -W %q -- \"$cur\"\n", strings.Join(f.words, " "))
			}
			b.WriteString("            return\n            ;;\n")
		}
		b.WriteString("        esac\n")
		names = append(names, "-h", "--help")
		if c.name == def {
			names = append(names, "--version")
		}
		fmt.Fprintf(&b, "        if [[ $cur == -* ]]; then\n            _reservist_compgen -W %q -- \"$cur\"\n            return\n        fi\n", strings.Join(names, " "))
		switch {
		case c.ops.Files:
			b.WriteString("        compopt -o filenames 2>/dev/null\n        _reservist_compgen -f -- \"$cur\"\n")
		case c.ops.Dirs:
			b.WriteString("        compopt -o filenames 2>/dev/null\n        _reservist_compgen -d -- \"$cur\"\n")
		case len(c.ops.Words) > 0:
			fmt.Fprintf(&b, "        _reservist_compgen -W %q -- \"$cur\"\n", strings.Join(c.ops.Words, " "))
		}
		b.WriteString("        ;;\n")
	}
	b.WriteString("    esac\n}\n\ncomplete -F _reservist reservist\n")
	return b.String()
}

// zshQuote escapes text for the inside of a single-quoted _arguments spec or _describe item:
// brackets and colons mean something there.
func zshQuote(s string) string {
	return strings.NewReplacer(`'`, `'\''`, `\`, `\\`, `[`, `\[`, `]`, `\]`, `:`, `\:`).Replace(s)
}

func zshScript(cmds []compCmd, def string) string {
	var b strings.Builder
	b.WriteString(`#compdef reservist
# zsh completion for reservist. Install it with:
#   reservist completion zsh > "${fpath[1]}/_reservist"   (then start a new shell)

_reservist() {
    local -a commands
    commands=(
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, "        '%s:%s'\n", c.name, zshQuote(c.summary))
	}
	b.WriteString(`    )
    if ((CURRENT == 2)) && [[ $words[2] != -* ]]; then
        _describe -t commands 'reservist command' commands
        return
    fi
    local cmd=` + def + `
    if [[ $words[2] != -* ]]; then
        cmd=$words[2]
        shift words
        ((CURRENT--))
    fi
    case $cmd in
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, "    (%s)\n        _arguments -s -S \\\n", c.name)
		for _, f := range c.flags {
			spec := dashed(f.name)
			if f.value {
				spec += "="
			}
			spec += "[" + zshQuote(f.doc) + "]"
			if f.value {
				action := " "
				switch {
				case f.files:
					action = "_files"
				case f.dirs:
					action = "_files -/"
				case len(f.words) > 0:
					action = "(" + strings.Join(f.words, " ") + ")"
				}
				spec += ":" + f.name + ":" + action
			}
			fmt.Fprintf(&b, "            '%s' \\\n", spec)
		}
		if c.name == def {
			b.WriteString("            '--version[print the version]' \\\n")
		}
		b.WriteString("            '(- *)'{-h,--help}'[print help]'")
		switch {
		case c.ops.Files:
			b.WriteString(" \\\n            '*:file:_files'")
		case c.ops.Dirs:
			b.WriteString(" \\\n            '*:directory:_files -/'")
		case len(c.ops.Words) > 0:
			fmt.Fprintf(&b, " \\\n            '1:%s:(%s)'", c.name, strings.Join(c.ops.Words, " "))
		}
		b.WriteString("\n        ;;\n")
	}
	b.WriteString(`    esac
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _reservist "$@"
else
    compdef _reservist reservist
fi
`)
	return b.String()
}

// fishQuote writes s as a single-quoted fish string.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func fishScript(cmds []compCmd, def string) string {
	var b strings.Builder
	b.WriteString(`# fish completion for reservist. Install it with:
#   reservist completion fish > ~/.config/fish/completions/reservist.fish

# __reservist_command prints the command being completed: the first word, or the default
# command when flags come first.
function __reservist_command
    set -l words (commandline -opc)
    if test (count $words) -lt 2; or string match -q -- '-*' $words[2]
        echo ` + def + `
    else
        echo $words[2]
    end
end

function __reservist_needs_command
    test (count (commandline -opc)) -eq 1
end

complete -c reservist -f
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, "complete -c reservist -n __reservist_needs_command -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, c := range cmds {
		// Fish offers options only for a word that starts with -, so the default command's
		// flags may be offered where a command could be named too.
		cond := fishQuote("test (__reservist_command) = " + c.name)
		for _, f := range c.flags {
			if len(f.name) == 1 {
				fmt.Fprintf(&b, "complete -c reservist -n %s -s %s", cond, f.name)
			} else {
				fmt.Fprintf(&b, "complete -c reservist -n %s -l %s", cond, f.name)
			}
			switch {
			case f.files:
				b.WriteString(" -r -F")
			case f.dirs:
				b.WriteString(" -x -a '(__fish_complete_directories)'")
			case len(f.words) > 0:
				fmt.Fprintf(&b, " -x -a %s", fishQuote(strings.Join(f.words, " ")))
			case f.value:
				b.WriteString(" -x")
			}
			fmt.Fprintf(&b, " -d %s\n", fishQuote(f.doc))
		}
		fmt.Fprintf(&b, "complete -c reservist -n %s -s h -l help -d 'print help'\n", cond)
		opsCond := fishQuote("not __reservist_needs_command; and test (__reservist_command) = " + c.name)
		switch {
		case c.ops.Files:
			fmt.Fprintf(&b, "complete -c reservist -n %s -F\n", opsCond)
		case c.ops.Dirs:
			fmt.Fprintf(&b, "complete -c reservist -n %s -a '(__fish_complete_directories)'\n", opsCond)
		case len(c.ops.Words) > 0:
			fmt.Fprintf(&b, "complete -c reservist -n %s -a %s\n", opsCond, fishQuote(strings.Join(c.ops.Words, " ")))
		}
	}
	fmt.Fprintf(&b, "complete -c reservist -n __reservist_needs_command -l version -d 'print the version'\n")
	return b.String()
}
