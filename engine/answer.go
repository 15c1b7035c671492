package engine

import (
	"strconv"
	"strings"

	"github.com/reservist/reservist/engine/jsonstr"
	"github.com/reservist/reservist/rules"
)

// encodeAnswer writes the callback answer for an action: {"instruction": do, fields…} with
// the fields' answer keys (rules.Field.AnswerKey) and lists joined with commas (as TaskRouter
// expects); {} for defer.
func encodeAnswer(a *rules.Action, vals []Value) []byte {
	if a.Do == rules.Defer {
		return emptyAnswer
	}
	b := make([]byte, 0, 64+48*len(vals))
	b = append(b, `{"instruction":`...)
	b = jsonstr.Append(b, a.Do)
	for _, v := range vals {
		b = append(b, ',')
		b = jsonstr.Append(b, v.Field.AnswerKey())
		b = append(b, ':')
		switch x := v.Value.(type) {
		case string:
			b = jsonstr.Append(b, x)
		case int:
			b = strconv.AppendInt(b, int64(x), 10)
		case bool:
			b = strconv.AppendBool(b, x)
		case []string:
			b = jsonstr.Append(b, strings.Join(x, ","))
		}
	}
	return append(b, '}')
}
