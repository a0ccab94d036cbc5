// Package sshconn runs commands on remote hosts over SSH, securely.
//
// Host keys are always verified against a known_hosts file; there is no
// option to skip the check. An unknown or changed host key is refused with a
// [*HostKeyError] that names the host, the file, the presented fingerprint and
// the command that fixes it once the fingerprint has been checked. The host
// key algorithms offered are restricted to the key types known_hosts holds
// for the host (golang/go#49631).
//
// Every network wait is bounded by a context: [Dial] bounds the TCP connect
// and the SSH handshake, [Client.Run] kills the remote command when the
// context ends, and [Client.DialTCP] bounds the opening of a forwarded
// connection.
//
// Commands run as `/bin/sh -c CMD`, started by the remote login shell (which
// must be a POSIX shell) after it printed its pid. The pid is what lets a
// cancelled command be killed for sure: OpenSSH ignores SSH signal requests
// in sessions of root logins and leaves a command running when its session
// is closed, so the client also runs `kill -s KILL -- -PID` on the command's
// process group in a second session.
//
// Secrets: [Config.Password] and [Command.Stdin] never appear in an error or a
// formatted value produced by this package; pass secrets to remote commands on
// stdin, never inside [Command.Cmd], whose first words appear in errors. Build
// command lines with [ShellQuote] so that interpolated values can never change
// the structure of a command.
//
// # Tunnelled MySQL connections
//
// [Client.DialTCP] has the signature of go-sql-driver's DialContextFunc, so a
// MySQL server that listens only on a remote host's loopback address is
// reached by registering the client under a network name of the caller's
// choice and naming that network in the DSN:
//
//	mysql.RegisterDialContext("ssh-node1", client.DialTCP)
//	db, err := sql.Open("mysql", "flow@ssh-node1(127.0.0.1:3306)/?readTimeout=30s")
//
// The connections returned by DialTCP support deadlines, so the driver's
// readTimeout and writeTimeout parameters work. A registered name stays bound
// to that client: register the name again after re-dialling.
package sshconn
