package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/reservist/reservist/internal/typo"
)

// Runner runs a command once its flags are parsed, with its positional arguments.
type Runner func(ctx context.Context, args []string) error

// Command is one reservist command: what the command list and help say about it, its
// flags, and what runs it.
type Command struct {
	Name string
	// Synopsis is what follows the name in the command list and in help's first line, like
	// "[--rules FILE] [--strict] [FILE...]"; "" when it takes nothing.
	Synopsis string
	// Summary is one line for the command list.
	Summary string
	// Doc is what help says about the command, after its usage line: paragraphs of prose.
	Doc string
	// Setup declares the command's flags on fs and returns what runs it. It is called once
	// per run, and also by help and shell completion, which never run the command.
	Setup func(fs *flag.FlagSet) Runner
	// Operands are what the positional arguments are, for shell completion.
	Operands Operands
}

// Operands say what a command's positional arguments are, for shell completion.
type Operands struct {
	Files, Dirs bool     // paths of files, or of directories
	Words       []string // one of these words
	Commands    bool     // a command's name
}

// flags declares the command's flags on a fresh set and returns it with the runner.
func (c *Command) flags() (*flag.FlagSet, Runner) {
	fs := NewFlags(c.Name)
	var run Runner
	if c.Setup != nil {
		run = c.Setup(fs)
	}
	return fs, run
}

// Run parses args and runs the command. Help goes to stdout; every error leaves as an
// ExitError that names the command, and a usage error says where the flags are explained.
func (c *Command) Run(ctx context.Context, args []string, stdout io.Writer) error {
	fs, run := c.flags()
	pos, err := Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.help(stdout, fs)
		return nil
	}
	if err == nil {
		if run == nil {
			if len(pos) > 0 {
				err = Usagef("unexpected argument %q: %s takes none", pos[0], c.Name)
			}
		} else {
			err = run(ctx, pos)
		}
	}
	if err == nil {
		return nil
	}
	ee, ok := errors.AsType[*ExitError](err)
	if !ok {
		ee = &ExitError{Code: Runtime, Err: err}
	}
	if ee.Cmd == "" {
		ee.Cmd = c.Name
	}
	if ee.Code == Usage && ee.Err != nil && ee.Hint == "" {
		ee.Hint = "run 'reservist " + c.Name + " -h'"
	}
	return ee
}

// helpWidth is where help text wraps: a terminal's 80 columns and a little.
const helpWidth = 96

// help prints the command's usage line, its doc and its flags, each with its variable and
// default, as `reservist help NAME` and `reservist NAME -h` show them.
func (c *Command) help(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: reservist %s", c.Name)
	if c.Synopsis != "" {
		fmt.Fprintf(w, " %s", c.Synopsis)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	doc := c.Doc
	if doc == "" {
		doc = c.Summary + "."
	}
	for i, para := range strings.Split(strings.TrimSpace(doc), "\n\n") {
		if i > 0 {
			fmt.Fprintln(w)
		}
		for _, l := range wrap(strings.Fields(para), helpWidth, "") {
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags:")
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  %s\n", flagLine(f))
		words := strings.Fields(usageText(f))
		if d := defaultText(f); d != "" {
			words = append(words, "(default "+d+")")
		}
		for _, l := range wrap(words, helpWidth, "        ") {
			fmt.Fprintln(w, l)
		}
	})
	fmt.Fprintln(w, "  -h, --help")
	fmt.Fprintln(w, "        print this help")
}

// flagLine is a flag as it is written: --name and what it takes (--rules file, --format
// text|json); nothing for a switch.
func flagLine(f *flag.Flag) string {
	s := dashed(f.Name)
	if isBool(f) {
		return s
	}
	if c, ok := f.Value.(*Choice); ok {
		return s + " " + strings.Join(c.Allowed, "|")
	}
	name, _ := flag.UnquoteUsage(f)
	return s + " " + name
}

// usageText is the flag's usage with the backquotes that name its value removed. A
// "(env VAR)" stays together as one word, so that it never wraps apart.
func usageText(f *flag.Flag) string {
	_, usage := flag.UnquoteUsage(f)
	return strings.ReplaceAll(usage, "(env ", "(env\x1f")
}

// defaultText is the default help shows, "" for a zero value (as the flag package does):
// quoted for a string flag.
func defaultText(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return ""
	}
	if reflect.TypeOf(f.Value).Elem().Kind() == reflect.String {
		return fmt.Sprintf("%q", f.DefValue)
	}
	return f.DefValue
}

// wrap fills lines of at most width columns with words, each line starting with indent.
func wrap(words []string, width int, indent string) []string {
	var lines []string
	line := indent
	for _, w := range words {
		w = strings.ReplaceAll(w, "\x1f", " ")
		if line != indent && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	if line != indent {
		lines = append(lines, line)
	}
	return lines
}

// Program is the whole command line: its commands, the one that runs when none is named,
// and help, version and completion, which it adds itself.
type Program struct {
	// Doc is the paragraph above the command list.
	Doc      string
	Commands []*Command
	// Default runs when no command is named: `reservist` alone, or flags first.
	Default string
	// Version is what `reservist version` and `reservist --version` print after the name.
	Version func() string
}

// all is the program's commands and its own three.
func (p *Program) all(stdout io.Writer) []*Command {
	cmds := append([]*Command{}, p.Commands...)
	cmds = append(cmds,
		&Command{
			Name: "completion", Synopsis: "bash|zsh|fish", Summary: "print a shell completion script",
			Doc: `Prints a completion script for the shell named: commands, flags, the words a flag takes and files where a flag or argument is a path.

bash: source <(reservist completion bash) in ~/.bashrc, or save it as ~/.local/share/bash-completion/completions/reservist.

zsh: reservist completion zsh > "${fpath[1]}/_reservist", then start a new shell (compinit must run, as most zsh set-ups do).

fish: reservist completion fish > ~/.config/fish/completions/reservist.fish`,
			Operands: Operands{Words: shells},
			Setup: func(fs *flag.FlagSet) Runner {
				return func(ctx context.Context, args []string) error {
					if len(args) != 1 {
						return Usagef("give one shell: %s", orList(shells))
					}
					script, err := p.completion(args[0], stdout)
					if err != nil {
						return Exit(Usage, err)
					}
					_, err = io.WriteString(stdout, script)
					return err
				}
			},
		},
		&Command{
			Name: "version", Summary: "print the version (also reservist --version)",
			Doc: "Prints reservist's version: the one a release build was linked with, else the module version and VCS revision Go recorded, then the Go version it was built with. reservist --version does the same.",
			Setup: func(fs *flag.FlagSet) Runner {
				return func(ctx context.Context, args []string) error {
					if len(args) > 0 {
						return Usagef("unexpected argument %q: version takes none", args[0])
					}
					_, err := fmt.Fprintln(stdout, "reservist", p.Version())
					return err
				}
			},
		},
		&Command{
			Name: "help", Synopsis: "[COMMAND]", Summary: "print this list, or a command's flags and arguments",
			Doc:      "Prints the list of commands; with a COMMAND, that command's usage, flags and arguments, as reservist COMMAND -h does. Both go to stdout.",
			Operands: Operands{Commands: true},
			Setup: func(fs *flag.FlagSet) Runner {
				return func(ctx context.Context, args []string) error {
					switch len(args) {
					case 0:
						p.list(stdout, cmds)
						return nil
					case 1:
						c := p.lookup(cmds, args[0])
						if c == nil {
							return p.unknown(args[0], cmds)
						}
						fs, _ := c.flags()
						c.help(stdout, fs)
						return nil
					}
					return Usagef("give one command, like reservist help check")
				}
			},
		},
	)
	return cmds
}

// Run runs the command args name, or the default one when args name none.
func (p *Program) Run(ctx context.Context, args []string, stdout io.Writer) error {
	cmds := p.all(stdout)
	if len(args) == 0 {
		return p.lookup(cmds, p.Default).Run(ctx, nil, stdout)
	}
	switch args[0] {
	case "-h", "-help", "--help":
		if len(args) == 1 {
			p.list(stdout, cmds)
			return nil
		}
	case "-version", "--version":
		return p.lookup(cmds, "version").Run(ctx, args[1:], stdout)
	}
	if strings.HasPrefix(args[0], "-") {
		return p.lookup(cmds, p.Default).Run(ctx, args, stdout)
	}
	c := p.lookup(cmds, args[0])
	if c == nil {
		return p.unknown(args[0], cmds)
	}
	return c.Run(ctx, args[1:], stdout)
}

func (p *Program) lookup(cmds []*Command, name string) *Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// unknown is the usage error for a command that does not exist.
func (p *Program) unknown(name string, cmds []*Command) error {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name
	}
	msg := fmt.Sprintf("unknown command %q", name)
	if near := typo.Closest(name, names); near != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", near)
	}
	return &ExitError{Code: Usage, Err: errors.New(msg), Hint: "run 'reservist help' for the list"}
}

// list prints the program's doc and every command with its synopsis and summary.
func (p *Program) list(w io.Writer, cmds []*Command) {
	for _, l := range wrap(strings.Fields(p.Doc), helpWidth, "") {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	const summaryAt = 44
	for _, c := range cmds {
		line := fmt.Sprintf("  reservist %-7s %s", c.Name, c.Synopsis)
		if len(line) < summaryAt {
			line += strings.Repeat(" ", summaryAt-len(line)) + c.Summary
		} else {
			line += "\n" + strings.Repeat(" ", summaryAt) + c.Summary
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "With no command, or with flags first, reservist runs %s.\n", p.Default)
	fmt.Fprintln(w, "Run 'reservist help COMMAND' or 'reservist COMMAND -h' for a command's flags and arguments.")
}
