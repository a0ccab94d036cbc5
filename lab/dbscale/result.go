package dbscale

import (
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// utf8Collation is utf8mb3_general_ci, the collation id of text columns.
const utf8Collation = 33

// table is a result set of text cells, as DBScale sends them (empty cells
// are empty strings, not NULL).
type table struct {
	cols []string
	rows [][]string
}

// index finds a column case-insensitively.
func (t *table) index(col string) int {
	for i, c := range t.cols {
		if strings.EqualFold(c, col) {
			return i
		}
	}
	return -1
}

// filter keeps the rows matching e; a column e names that the table lacks
// is MySQL's error 1054.
func (t *table) filter(e expr) error {
	if e == nil {
		return nil
	}
	for _, c := range e.columns() {
		if t.index(c) < 0 {
			return newErr(CodeBadField, "Unknown column '%s' in 'where clause'", c)
		}
	}
	kept := t.rows[:0]
	for _, row := range t.rows {
		view := func(col string) string { return row[t.index(col)] }
		if e.eval(view) {
			kept = append(kept, row)
		}
	}
	t.rows = kept
	return nil
}

// result encodes the table as a text-protocol result set of VARCHAR
// columns, with parsed values filled in too (so Resultset getters work).
func (t *table) result() *mysql.Result {
	rs := &mysql.Resultset{FieldNames: make(map[string]int, len(t.cols))}
	for i, c := range t.cols {
		width := len(c)
		for _, row := range t.rows {
			if len(row[i]) > width {
				width = len(row[i])
			}
		}
		rs.Fields = append(rs.Fields, &mysql.Field{
			Name:         []byte(c),
			OrgName:      []byte(c),
			Charset:      utf8Collation,
			ColumnLength: uint32(3 * max(width, 64)),
			Type:         mysql.MYSQL_TYPE_VAR_STRING,
		})
		rs.FieldNames[c] = i
	}
	for _, row := range t.rows {
		var data []byte
		vals := make([]mysql.FieldValue, len(row))
		for i, v := range row {
			data = append(data, mysql.PutLengthEncodedString([]byte(v))...)
			vals[i] = mysql.NewFieldValue(mysql.FieldValueTypeString, 0, []byte(v))
		}
		rs.RowDatas = append(rs.RowDatas, data)
		rs.Values = append(rs.Values, vals)
	}
	return mysql.NewResult(rs)
}

// cellString reads a parsed value as text; ok is false for NULL.
func cellString(v mysql.FieldValue) (string, bool) {
	switch v.Type {
	case mysql.FieldValueTypeNull:
		return "", false
	case mysql.FieldValueTypeUnsigned:
		return strconv.FormatUint(v.AsUint64(), 10), true
	case mysql.FieldValueTypeSigned:
		return strconv.FormatInt(v.AsInt64(), 10), true
	case mysql.FieldValueTypeFloat:
		return strconv.FormatFloat(v.AsFloat64(), 'g', -1, 64), true
	}
	return string(v.AsString()), true
}

// toBinaryResult re-encodes a text result set for the binary protocol a
// COM_STMT_EXECUTE answer needs: every column becomes a VARCHAR, values are
// kept as text, NULLs stay NULL.
func toBinaryResult(r *mysql.Result) *mysql.Result {
	if r == nil || r.Resultset == nil {
		return r
	}
	src := r.Resultset
	rs := &mysql.Resultset{FieldNames: src.FieldNames}
	for _, f := range src.Fields {
		nf := *f
		nf.Data = nil
		nf.Type = mysql.MYSQL_TYPE_VAR_STRING
		nf.Flag &^= mysql.BINARY_FLAG
		nf.Decimal = 0
		if nf.Charset == 0 {
			nf.Charset = utf8Collation
		}
		rs.Fields = append(rs.Fields, &nf)
	}
	bitmapLen := (len(rs.Fields) + 7 + 2) / 8
	for _, vals := range src.Values {
		row := make([]byte, 1+bitmapLen)
		for j, v := range vals {
			s, ok := cellString(v)
			if !ok {
				row[1+(j+2)/8] |= 1 << ((j + 2) % 8)
				continue
			}
			row = append(row, mysql.PutLengthEncodedString([]byte(s))...)
		}
		rs.RowDatas = append(rs.RowDatas, row)
	}
	rs.Values = src.Values
	out := *r
	out.Resultset = rs
	return &out
}

// renameColumns renames the columns of a backend result set with f and
// drops the fields' cached wire form so that the new names are sent.
func renameColumns(r *mysql.Result, f func(string) string) {
	if r == nil || r.Resultset == nil {
		return
	}
	names := make(map[string]int, len(r.Fields))
	for i, fld := range r.Fields {
		n := f(string(fld.Name))
		fld.Name = []byte(n)
		if len(fld.OrgName) > 0 {
			fld.OrgName = []byte(f(string(fld.OrgName)))
		}
		fld.Data = nil
		names[n] = i
	}
	r.FieldNames = names
}
