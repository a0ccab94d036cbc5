// Package drlab runs the DR lab: on one machine, the seed's topology of a
// primary cluster and a standby cluster, each of three real MySQL nodes per
// shard behind a DBScale router (the lab/dbscale emulator), the standby
// replicating from the primary, and one real OpenSSH server through which
// every node's "host" is reachable. Playbooks and their tests rehearse on it
// before production.
//
// The addresses are fixed (all loopback): node normal_K_i (shard K, i=0..2)
// of the primary cluster at 127.0.1.(3K+i+1), of the standby at
// 127.0.2.(3K+i+1), every MySQL on port 16315; routers at 127.0.1.100:16310
// (primary) and 127.0.2.100:16310 (standby); sshd on port 2222 at every node
// and router address. The primary's master is normal_K_0, the standby's
// normal_K_1. Replication uses GTID auto-position: primary master → primary
// slaves, primary master → standby master (wired by the primary router's DR
// link), standby master → standby slaves.
//
// Up creates a lab (or starts what is down in an existing one) and records
// everything in DIR/lab.json (mode 0600; it holds the lab's generated
// passwords) and DIR/flashback.ini. Load reads a lab back; Status, Write,
// Check and Down work from that record, so any process can drive a lab
// another one started. The clusters keep their built names (ClusterPrimary,
// ClusterStandby: addresses and records), but a switchover swaps their DR
// roles, so Status, Write and Check find the roles from the routers (Roles:
// the router in slave-dbscale-mode fronts the standby); Follow is a writer
// that survives a switchover and measures its write outage. Routers run as separate processes: the running
// program re-executed as `flow lab serve-dbscale --dir D --listen H:P` (see
// ServeRouter; any program importing this package serves that command line
// when started by Up, before its main runs).
//
// The layout of a node mimics production so that shell steps written for it
// work: DIR/hosts/<ip>/data/mysqldata/16315-xxxxxxxx/{dbdata,logfile,tmp,
// socket,pid} and my16315.conf, with the MySQL install's basedir.
package drlab
