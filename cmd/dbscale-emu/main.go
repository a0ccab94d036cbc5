// Command dbscale-emu runs one emulated DBScale router (package
// github.com/flowdba/flow/lab/dbscale) until SIGTERM or SIGINT.
//
//	dbscale-emu --dir DIR --listen 127.0.0.x:16310 [--config FILE]
//
// DIR holds state.json (created on the first start from the topology file,
// reloaded afterwards). The topology file defaults to DIR/topology.yaml. Once
// listening it prints "dbscale-emu: listening on HOST:PORT" to stderr.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/flowdba/flow/lab/dbscale"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("dbscale-emu", flag.ContinueOnError)
	dir := fs.String("dir", "", "folder for state.json (required)")
	listen := fs.String("listen", "127.0.0.1:16310", "loopback host:port to listen on")
	cfgPath := fs.String("config", "", "topology file, YAML or JSON (default DIR/topology.yaml)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: dbscale-emu --dir DIR [--listen 127.0.0.x:PORT] [--config FILE]")
		return 2
	}
	if *cfgPath == "" {
		*cfgPath = filepath.Join(*dir, "topology.yaml")
	}
	logger := log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
	cfg, err := dbscale.LoadConfig(*cfgPath)
	if err != nil {
		logger.Printf("dbscale-emu: %v", err)
		return 1
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	r, err := dbscale.Start(dbscale.Options{Dir: *dir, Listen: *listen, Config: cfg, Logf: logger.Printf})
	if err != nil {
		logger.Printf("dbscale-emu: %v", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "dbscale-emu: listening on %s\n", r.Addr())
	sig := <-stop
	logger.Printf("dbscale-emu: %v: stopping", sig)
	if err := r.Close(); err != nil {
		logger.Printf("dbscale-emu: close: %v", err)
		return 1
	}
	return 0
}
