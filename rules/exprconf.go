package rules

import (
	"errors"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"
)

// compileExpr compiles one expression of the file: a `when` (boolean) or a template part.
//
// It is expr.Compile with one configuration per file and kind instead of a new one per
// expression: expr.Compile builds the whole table of builtins for every expression, which
// was about a third of the time a file of 1,000 rules took to load. The steps are
// expr.Compile's own, so the programs and the error messages are the same. A configuration
// is used by one parser only (its type cache is not safe for concurrent use).
func (p *parser) compileExpr(src string, when bool) (*vm.Program, error) {
	k := 0
	if when {
		k = 1
	}
	if p.exprConfs[k] == nil {
		opts := []expr.Option{expr.Env(Env{})}
		if when {
			opts = append(opts, expr.AsBool())
		}
		c := conf.CreateNew()
		for _, op := range opts {
			op(c)
		}
		for name := range c.Disabled {
			delete(c.Builtins, name)
		}
		c.Check()
		p.exprConfs[k] = c
	}
	config := p.exprConfs[k]
	tree, err := checker.ParseCheck(src, config)
	if err != nil {
		return nil, err
	}
	if config.Optimize {
		if err := optimizer.Optimize(&tree.Node, config); err != nil {
			var fileError *file.Error
			if errors.As(err, &fileError) {
				return nil, fileError.Bind(tree.Source)
			}
			return nil, err
		}
	}
	return compiler.Compile(tree, config)
}
