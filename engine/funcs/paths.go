package funcs

import (
	"path"
	"strings"

	"github.com/flowdba/flow/engine"
)

// posixDirname is dirname(1): trailing slashes do not make a level, so the
// parent of "/data/mysql/3306/data/" is "/data/mysql/3306", as a DBA means it.
func posixDirname(p string) string {
	t := strings.TrimRight(p, "/")
	if t == "" {
		if p == "" {
			return "."
		}
		return "/"
	}
	return path.Dir(t)
}

// posixBasename is basename(1): the last element, trailing slashes ignored.
func posixBasename(p string) string {
	t := strings.TrimRight(p, "/")
	if t == "" {
		if p == "" {
			return ""
		}
		return "/"
	}
	return path.Base(t)
}

func init() {
	str := []any{new(func(string) string)}
	engine.RegisterFunc(engine.FuncDef{Name: "dirname", Help: "dirname(path): the parent directory, as dirname(1): dirname(\"/data/mysql/3306/data/\") = \"/data/mysql/3306\"",
		Fn: func(p ...any) (any, error) { return posixDirname(toString(p[0])), nil }, Types: str})
	engine.RegisterFunc(engine.FuncDef{Name: "basename", Help: "basename(path): the last element, as basename(1): basename(\"/data/mysql/3306/data/\") = \"data\"",
		Fn: func(p ...any) (any, error) { return posixBasename(toString(p[0])), nil }, Types: str})
	engine.RegisterFunc(engine.FuncDef{Name: "path_join", Help: "path_join(a, b, …): the elements joined with / and cleaned: path_join(\"/data/mysql\", \"side\", \"new.conf\") = \"/data/mysql/side/new.conf\"",
		Fn: func(p ...any) (any, error) {
			parts := make([]string, len(p))
			for i, v := range p {
				parts[i] = toString(v)
			}
			return path.Join(parts...), nil
		},
		Types: []any{new(func(...string) string)}})
}
