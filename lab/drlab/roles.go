package drlab

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// rolesTimeout bounds asking both routers for their DR options: a router
// that does not answer within it leaves the roles unknown.
const rolesTimeout = 3 * time.Second

// Built names of the clusters for the commands that take a cluster
// (WriteOptions.Cluster, `flow lab write --cluster`): ClusterPrimary and
// ClusterStandby there mean the clusters' CURRENT roles (which a
// switchover swaps), these the clusters as `flow lab up` built them,
// whatever role they have now (also while the roles are unknown).
const (
	BuiltPrimary = "built-primary"
	BuiltStandby = "built-standby"
)

// ErrRolesUnknown is wrapped by the errors of the commands that need the
// current roles (a write to "the primary") when the routers do not say
// them unambiguously: both or neither in slave-dbscale-mode (a half-done
// switchover), or a router that does not answer.
var ErrRolesUnknown = errors.New("the clusters' current roles are unknown")

// RouterRole is what one router says about its DR role: its options
// slave-dbscale-mode (1: this router is the DR standby) and
// enable-read-only, as text ("" when it could not be read).
type RouterRole struct {
	// Cluster is the cluster's built name (ClusterPrimary or
	// ClusterStandby), Addr its router.
	Cluster string `json:"cluster"`
	Addr    string `json:"addr"`
	// SlaveDBScaleMode and ReadOnly are the options' values as the router
	// printed them.
	SlaveDBScaleMode string `json:"slave_dbscale_mode"`
	ReadOnly         string `json:"enable_read_only"`
	// Error says why the router could not be asked.
	Error string `json:"error,omitempty"`
}

// Roles are the clusters' current DR roles, read from the routers (never
// from the built names): the one router in slave-dbscale-mode fronts the
// standby, the other the primary. Its JSON form is `roles` in `flow lab
// status --json`.
type Roles struct {
	// Known is true when exactly one router is in slave-dbscale-mode and
	// the other is not; Primary and Standby are then the built names of
	// the clusters holding those roles now ("" when not Known).
	Known   bool   `json:"known"`
	Primary string `json:"primary"`
	Standby string `json:"standby"`
	// Switched is true when the roles are known and the built standby is
	// the primary now.
	Switched bool `json:"switched"`
	// Reason says why the roles are not known, naming both routers'
	// values.
	Reason string `json:"reason,omitempty"`
	// Routers are both routers' answers, the built primary's first.
	Routers []RouterRole `json:"routers"`
}

// Of returns a built cluster's current role (ClusterPrimary or
// ClusterStandby), or "" when the roles are unknown.
func (r Roles) Of(cluster string) string {
	switch {
	case !r.Known:
		return ""
	case cluster == r.Primary:
		return ClusterPrimary
	case cluster == r.Standby:
		return ClusterStandby
	}
	return ""
}

// Err returns nil when the roles are known, else an error wrapping
// ErrRolesUnknown with the reason.
func (r Roles) Err() error {
	if r.Known {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrRolesUnknown, r.Reason)
}

// String says the roles in one line for people.
func (r Roles) String() string {
	if !r.Known {
		return "roles UNKNOWN: " + r.Reason
	}
	if r.Switched {
		return "roles: switched over: the built standby is the PRIMARY now, the built primary the STANDBY"
	}
	return "roles: as built: the built primary is the PRIMARY, the built standby the STANDBY"
}

// parseSwitch reads an option value as on (1) or off (0); ok is false for
// anything else ("" included), which never counts as a role.
func parseSwitch(v string) (on, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "on", "true", "yes":
		return true, true
	case "0", "off", "false", "no":
		return false, true
	}
	return false, false
}

// optionValue returns the value of a router option in the rows of
// `dbscale show options like '…'` (option_name, value): names compared
// with - and _ alike and case-insensitively, as DBScale does.
func optionValue(rows []map[string]string, name string) (string, bool) {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-") }
	for _, r := range rows {
		if norm(r["option_name"]) == norm(name) {
			return r["value"], true
		}
	}
	return "", false
}

// decideRoles derives the roles from both routers' answers: exactly one
// router in slave-dbscale-mode → that cluster is the standby, the other the
// primary. Both on, both off, an unreadable router or an unreadable value →
// unknown, with both values in the reason: it never guesses.
func decideRoles(routers []RouterRole) Roles {
	r := Roles{Routers: routers}
	desc := func() string {
		var parts []string
		for _, x := range routers {
			v := x.SlaveDBScaleMode
			switch {
			case x.Error != "":
				v = "unreadable (" + x.Error + ")"
			case v == "":
				v = "missing"
			}
			parts = append(parts, fmt.Sprintf("the built %s's router %s has slave-dbscale-mode %s", x.Cluster, x.Addr, v))
		}
		return strings.Join(parts, ", ")
	}
	if len(routers) != 2 {
		r.Reason = fmt.Sprintf("%d router(s) in the lab's record, want 2", len(routers))
		return r
	}
	var standby []string
	for _, x := range routers {
		on, ok := parseSwitch(x.SlaveDBScaleMode)
		if x.Error != "" || !ok {
			r.Reason = desc() + ": cannot tell the roles"
			return r
		}
		if on {
			standby = append(standby, x.Cluster)
		}
	}
	switch len(standby) {
	case 0:
		r.Reason = desc() + ": neither router is in slave-dbscale-mode, so both act as primaries (a half-done switchover?)"
		return r
	case 2:
		r.Reason = desc() + ": both routers are in slave-dbscale-mode, so neither is the primary (a half-done switchover?)"
		return r
	}
	r.Known = true
	r.Standby = standby[0]
	for _, x := range routers {
		if x.Cluster != r.Standby {
			r.Primary = x.Cluster
		}
	}
	r.Switched = r.Primary != ClusterPrimary
	return r
}

// Roles asks both routers (as their admin, within a few seconds) for
// slave-dbscale-mode and enable-read-only and derives the clusters'
// current roles (see decideRoles): a switchover swaps them, and the lab's
// commands name and target clusters by these, not by the built names.
// The error is only the context's; an unreachable router makes the roles
// unknown.
func (l *Lab) Roles(ctx context.Context) (Roles, error) {
	ctx, cancel := context.WithTimeout(ctx, rolesTimeout)
	defer cancel()
	var routers []RouterRole
	for _, c := range Clusters {
		routers = append(routers, l.routerRole(ctx, c))
	}
	if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
		return Roles{}, err
	}
	return decideRoles(routers), nil
}

// routerRole reads one router's slave-dbscale-mode and enable-read-only.
func (l *Lab) routerRole(ctx context.Context, cluster string) RouterRole {
	rr := RouterRole{Cluster: cluster, Addr: l.Router(cluster).Addr()}
	db, err := l.openRouterShort(cluster)
	if err != nil {
		rr.Error = err.Error()
		return rr
	}
	defer db.Close()
	for _, o := range []struct {
		name string
		into *string
	}{{"slave-dbscale-mode", &rr.SlaveDBScaleMode}, {"enable-read-only", &rr.ReadOnly}} {
		rows, err := queryMaps(ctx, db, "dbscale show options like '"+o.name+"'")
		if err != nil {
			rr.Error = fmt.Sprintf("dbscale show options like '%s': %v", o.name, err)
			return rr
		}
		if v, ok := optionValue(rows, o.name); ok {
			*o.into = v
		}
	}
	return rr
}

// ResolveCluster turns a cluster as the lab's commands take it into a
// built cluster name: ClusterPrimary/ClusterStandby are the current roles
// (from Roles; an error wrapping ErrRolesUnknown when the routers do not
// say), BuiltPrimary/BuiltStandby the clusters as built, "" the current
// primary. It returns the built name and the cluster's current role (""
// when unknown).
func (l *Lab) ResolveCluster(ctx context.Context, cluster string) (built, role string, err error) {
	switch cluster {
	case BuiltPrimary, BuiltStandby:
		built = strings.TrimPrefix(cluster, "built-")
		roles, err := l.Roles(ctx)
		if err != nil {
			return "", "", err
		}
		return built, roles.Of(built), nil
	case "", ClusterPrimary, ClusterStandby:
		if cluster == "" {
			cluster = ClusterPrimary
		}
		roles, err := l.Roles(ctx)
		if err != nil {
			return "", "", err
		}
		if !roles.Known {
			return "", "", fmt.Errorf("which cluster is the %s now: %w (name one as built: --cluster %s or %s)", cluster, roles.Err(), BuiltPrimary, BuiltStandby)
		}
		if cluster == ClusterPrimary {
			return roles.Primary, ClusterPrimary, nil
		}
		return roles.Standby, ClusterStandby, nil
	}
	return "", "", fmt.Errorf("cluster %q: use %s or %s (the current roles) or %s or %s (as built)", cluster, ClusterPrimary, ClusterStandby, BuiltPrimary, BuiltStandby)
}

// ValidCluster reports whether ResolveCluster takes the name.
func ValidCluster(cluster string) bool {
	switch cluster {
	case "", ClusterPrimary, ClusterStandby, BuiltPrimary, BuiltStandby:
		return true
	}
	return false
}

// openRouterShort opens a cluster's router as its admin with short
// timeouts (1 s to connect, 2 s per read or write), for probes that must
// not hang on a router that stopped answering.
func (l *Lab) openRouterShort(cluster string) (*sql.DB, error) {
	c := l.RouterConfig(cluster)
	c.Timeout = time.Second
	c.ReadTimeout = 2 * time.Second
	c.WriteTimeout = 2 * time.Second
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("%s router: %w", cluster, err)
	}
	return sql.OpenDB(conn), nil
}
