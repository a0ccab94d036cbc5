package drlab

import (
	"fmt"
	"strings"
	"time"
)

// writeIni writes DIR/flashback.ini (mode 0600) with the old tool's
// sections and key names: [source] the primary router, [target] the
// standby router (each with the SSH account of its cluster's node hosts),
// [nodes] the account flow uses on every MySQL node, [lab] the folder and
// shard count. Comments stand on their own lines: values may hold '#' and
// ';'.
func (l *Lab) writeIni() error {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# The DR lab's config for flow's flashback playbooks, written by `flow lab up`")
	line("# at %s. It holds the lab's passwords: keep it private (mode 0600).", time.Now().UTC().Format(time.RFC3339))
	router := func(section, comment, cluster string) {
		r := l.Router(cluster)
		line("")
		line("# %s", comment)
		line("[%s]", section)
		line("host = %s", r.Host)
		line("port = %d", r.Port)
		line("mysql_user = %s", l.Credentials.RouterUser)
		line("mysql_password = %s", l.Credentials.RouterPassword(cluster))
		line("# SSH to this cluster's node hosts")
		line("sys_user = %s", SSHUser)
		line("sys_port = %d", l.SSHD.Port)
		if l.Credentials.SSHPassword != "" {
			// as at a site that logs in by password: no key, so the
			// playbooks' SSH connections use the password alone
			line("# log in by password, as the site does (the lab's sshd also takes the key %s)", l.SSHD.KeyFile)
			line("sys_key_file =")
			line("sys_password = %s", l.Credentials.SSHPassword)
		} else {
			line("sys_key_file = %s", l.SSHD.KeyFile)
		}
		line("sys_known_hosts = %s", l.SSHD.KnownHosts)
		line("# the OS user mysqld runs as on this cluster's nodes")
		line("mysqld_user = root")
	}
	router("source", "The primary cluster's router.", ClusterPrimary)
	router("target", "The standby cluster's router.", ClusterStandby)
	line("")
	line("# The account flow uses directly on every MySQL node.")
	line("[nodes]")
	line("mysql_user = %s", l.Credentials.AdminUser)
	line("mysql_password = %s", l.Credentials.AdminPassword)
	line("")
	line("[lab]")
	line("dir = %s", l.Dir)
	line("shards = %d", l.Shards)
	return writeFileAtomic(l.IniPath(), []byte(b.String()), 0o600)
}
