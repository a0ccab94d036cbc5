package funcs_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	_ "github.com/flowdba/flow/engine/funcs"
)

// dataservers is what `dbscale show dataservers` returns through the sql
// step (columns of D3 in the DBScale reference), trimmed to what matters.
var dataservers = []any{
	map[string]any{"servername": "normal_0_0", "master-online-status": "Not_A_Master"},
	map[string]any{"servername": "normal_0_1", "master-online-status": "Master_Online"},
	map[string]any{"servername": "normal_1_0", "master-online-status": "Master_Online"},
	map[string]any{"servername": "slave_dbscale_server", "master-online-status": "Not_A_Master"},
}

var optionRows = []any{
	map[string]any{"option_name": "transparent-mode", "value": "0"},
	map[string]any{"option_name": "enable_super_readonly_on_slave", "value": "TRUE"},
	map[string]any{"option_name": "Slave-DBScale-Mode", "value": int64(1)},
}

func TestFunctions(t *testing.T) {
	vars := map[string]any{"ds": dataservers, "opts": optionRows, "datadir": "/data/mysql/3306/data/", "wait": time.Minute}
	cases := []struct {
		src  string
		want any
	}{
		{`dirname(datadir)`, "/data/mysql/3306"},
		{`dirname(dirname(datadir))`, "/data/mysql"},
		{`dirname("data")`, "."},
		{`dirname("/")`, "/"},
		{`basename(datadir)`, "data"},
		{`basename("/")`, "/"},
		{`path_join(dirname(dirname(datadir)), "side", "new.conf")`, "/data/mysql/side/new.conf"},
		{`path_join("/a/", "/b//", "../c")`, "/a/c"},
		{`map(masters(ds), .servername)`, []any{"normal_0_1", "normal_1_0"}},
		{`len(masters([]))`, 0},
		{`uniq(map(ds, datasource_of(.servername)))`, []any{"normal_0", "normal_1", "slave_dbscale"}},
		{`option(opts, "TRANSPARENT_MODE")`, "0"},
		{`option(opts, "slave_dbscale_mode")`, int64(1)},
		{`option(opts, "no-such-option") == nil`, true},
		{`options(opts).enable_super_readonly_on_slave`, "TRUE"},
		{`is_on(option(opts, "transparent-mode"))`, false},
		{`is_on(option(opts, "enable-super-readonly-on-slave"))`, true},
		{`is_on(option(opts, "slave-dbscale-mode"))`, true},
		{`is_on(option(opts, "absent"))`, false},
		{`is_on(" Off ")`, false},
		{`bytes("1 GiB")`, 1073741824},
		{`bytes("500MB")`, 500000000},
		{`seconds(wait)`, 60},
		{`seconds("1500ms")`, 2},
		{`seconds("0s")`, 0},
	}
	for _, c := range cases {
		got, err := engine.Eval(c.src, vars)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.src, got, c.want)
		}
	}
}

func TestFunctionsRefuseWhatTheyCannotRead(t *testing.T) {
	vars := map[string]any{"ds": dataservers, "bad": []any{"x"}}
	for src, want := range map[string]string{
		`is_on("maybe")`:          `"maybe" is neither on`,
		`bytes("lots")`:           `"lots" is not a size`,
		`seconds("soon")`:         `"soon" is not a duration`,
		`seconds("-1s")`:          "-1s is negative",
		`datasource_of("normal")`: `"normal" is not named <datasource>_<n>`,
		`options(ds)`:             "row 0 has no option_name column",
		`masters(bad)`:            "row 0 is string, not a row of columns",
		`masters("text")`:         "string is not a list of rows",
	} {
		_, err := engine.Eval(src, vars)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", src, err, want)
		}
	}
}
