//go:build tools

package main
import (
 _ "github.com/expr-lang/expr"
 _ "github.com/go-mysql-org/go-mysql/server"
 _ "github.com/go-sql-driver/mysql"
 _ "github.com/gofrs/flock"
 _ "github.com/sirupsen/logrus"
 _ "github.com/spf13/cobra"
 _ "golang.org/x/crypto/ssh"
 _ "golang.org/x/sync/errgroup"
 _ "golang.org/x/term"
 _ "gopkg.in/ini.v1"
 _ "gopkg.in/yaml.v3"
)
func main(){}
