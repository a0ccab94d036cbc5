// Package dbscale emulates the DBScale (GreatDB Router) MySQL router for
// flow's lab and tests.
//
// A Router is a MySQL-protocol server (go-mysql-org/go-mysql's server
// package) that answers the `dbscale …` admin commands with the result-set
// columns the real router uses, applies the router's rules (enable-read-only,
// slave-dbscale-mode and the replication statements it gates, admin
// privileges), and forwards every other statement to the master MySQL node of
// the catalog datasource normal_0, one backend connection per client
// connection.
//
// The topology (datasources, dataservers, users, options) comes from a
// Config file the lab writes; every change made by an admin command is
// persisted to DIR/state.json (written atomically) and reloaded at start, so
// a killed and restarted emulator keeps its state. Dataserver statuses are
// computed live by probing the MySQL nodes. A DR link (a dataserver flagged
// dbscale_server that points at another emulator, wrapped in a server
// datasource and attached as a slave of normal_K, one link per datasource)
// makes the standby cluster's master of normal_K replicate from this
// cluster's master of normal_K: the emulator sends CHANGE MASTER TO …
// MASTER_AUTO_POSITION=1 and START SLAVE through the standby router, which
// forwards them, translated for MySQL 8.4+, to its master.
//
// See README.md in this folder for every command, what it does and does not
// do, and the error codes.
package dbscale
