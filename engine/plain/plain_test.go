package plain

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestOf checks numbers from JSON become int or float64 at every depth and
// what YAML gives is kept as it is.
func TestOf(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{"port": 3306, "ratio": 0.5, "big": 1e30, "list": [1, {"n": 2}], "s": "x"}`))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"port": 3306, "ratio": 0.5, "big": 1e30, "list": []any{1, map[string]any{"n": 2}}, "s": "x"}
	if got := Of(v); !reflect.DeepEqual(got, want) {
		t.Fatalf("Of = %#v, want %#v", got, want)
	}
	yamlish := map[string]any{"port": 3306, "on": true, "hosts": []any{"a", 2.5}}
	if got := Of(yamlish); !reflect.DeepEqual(got, map[string]any{"port": 3306, "on": true, "hosts": []any{"a", 2.5}}) {
		t.Fatalf("Of changed YAML values: %#v", got)
	}
}
