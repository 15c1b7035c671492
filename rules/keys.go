package rules

import "slices"

// These accessors hand the validator's own key lists and name patterns to the JSON Schema
// generator (rules/schema), so that the schema cannot drift from what Parse accepts.

// TopKeys lists the keys the top level of rules.yaml takes, in SPEC order.
func TopKeys() []string { return slices.Clone(topKeys) }

// RuleKeys lists the keys a rule takes, in SPEC order.
func RuleKeys() []string { return slices.Clone(ruleKeys) }

// ActionKeys lists the keys default and on_error take, in SPEC order.
func ActionKeys() []string { return slices.Clone(actionKeys) }

// NamePattern is the regular expression a rule name must match.
func NamePattern() string { return namePattern.String() }

// VarNamePattern is the regular expression a name under vars must match.
func VarNamePattern() string { return varPattern.String() }

// E164Pattern is the regular expression a literal phone number must match.
func E164Pattern() string { return e164Pattern.String() }
