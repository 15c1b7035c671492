package engine_test

import (
	"os"
	"testing"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/rules"
)

func newEngineFromSet(set *rules.Set) *engine.Engine { return engine.New(set) }

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
