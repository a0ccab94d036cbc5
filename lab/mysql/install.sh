#!/usr/bin/env bash
# install.sh [DEST] — install MySQL server and client (Debian unstable's
# mysql-server-core and mysql-client-core) into DEST for flow's tests and lab.
#
# Nothing is installed into the system: the package closure is downloaded with
# apt using private state under DEST, unpacked with `dpkg -x` into DEST/prefix,
# and run through the prefix's own dynamic loader by the wrapper scripts in
# DEST/basedir/bin. DEST defaults to <repo>/.lab/mysql. See README.md.
#
# The Debian mirror is read from this machine's apt configuration at run time.
# A second run with everything in place only prints what is installed.
set -euo pipefail

die() {
	echo "install.sh: error: $*" >&2
	exit 1
}
say() { echo "install.sh: $*"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dest=${1:-$repo/.lab/mysql}
mkdir -p "$dest" || die "cannot create $dest"
dest=$(cd "$dest" && pwd)

prefix=$dest/prefix
basedir=$dest/basedir
aptdir=$dest/apt
packages=(mysql-server-core mysql-client-core)

# Fast path: a complete install has a VERSION file, written last.
# The wrappers name the prefix by its absolute path: a moved install is redone.
if [[ -s $dest/VERSION && -x $basedir/bin/mysqld && -x $basedir/bin/mysqld_safe && -f $prefix/usr/lib/mysql/plugin/mysql_clone.so ]] &&
	grep -qF "P='$prefix'" "$basedir/bin/mysqld"; then
	say "MySQL $(cat "$dest/VERSION") is installed in $dest"
	say "  basedir:    $basedir   (bin/mysqld, bin/mysqld_safe, bin/mysql, ...)"
	say "  plugin-dir: $prefix/usr/lib/mysql/plugin"
	exit 0
fi

# --- what this machine is --------------------------------------------------
command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian-based machine"
command -v dpkg >/dev/null || die "dpkg not found: this script needs a Debian-based machine"
arch=$(dpkg --print-architecture)
case $arch in
amd64) triplet=x86_64-linux-gnu loader=ld-linux-x86-64.so.2 ;;
arm64) triplet=aarch64-linux-gnu loader=ld-linux-aarch64.so.1 ;;
*) die "unsupported architecture $arch (supported: amd64, arm64)" ;;
esac
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || die "$keyring is missing: install the debian-archive-keyring package"

# mirror prints the URI of the machine's main Debian archive: the first
# "deb" source whose suite is a plain release name (not -security/-updates),
# from deb822 *.sources files first, then one-line sources.list files.
mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		awk '
			function flush() {
				if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "" && enabled !~ /^[ \t]*no/) {
					n = split(suites, s, /[ \t]+/)
					for (i = 1; i <= n; i++) if (s[i] != "" && s[i] !~ /-/) {
						split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
					}
				}
				types = uris = suites = enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "types:"   { sub(/^[^:]*:[ \t]*/, ""); types = $0 }
			tolower($1) == "uris:"    { sub(/^[^:]*:[ \t]*/, ""); uris = $0 }
			tolower($1) == "suites:"  { sub(/^[^:]*:[ \t]*/, ""); suites = $0 }
			tolower($1) == "enabled:" { sub(/^[^:]*:[ \t]*/, ""); enabled = $0 }
			END { if (!found) flush() }
		' "$f" | head -n1
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		awk '
			$1 != "deb" { next }
			{ i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ } }
			$(i + 1) !~ /-/ { print $i; exit }
		' "$f"
	done
}
uri=$(mirror | head -n1)
[[ -n $uri ]] || die "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (need a 'deb' source for a release such as bookworm)"
uri=${uri%/}
say "Debian mirror (from this machine's apt config): $uri"

# --- private apt state -------------------------------------------------------
mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial" "$aptdir/cache"
echo "deb [signed-by=$keyring] $uri sid main" >"$aptdir/sources.list"
: >"$aptdir/status"
apt_opts=(
	-o "Dir::State::Lists=$aptdir/lists"
	-o "Dir::State::status=$aptdir/status"
	-o "Dir::Etc::SourceList=$aptdir/sources.list"
	-o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::Etc::Preferences=/dev/null"
	-o "Dir::Etc::PreferencesParts=/dev/null"
	-o "Dir::Cache=$aptdir/cache"
	-o "Dir::Cache::Archives=$aptdir/archives"
	-o "APT::Architecture=$arch"
	-o "APT::Architectures=$arch"
	-o "APT::Install-Recommends=false"
	-o "APT::Install-Suggests=false"
	-o "Debug::NoLocking=1"
)
if [[ $(id -u) == 0 ]]; then
	# The private folders belong to root; apt's _apt sandbox user could not write them.
	apt_opts+=(-o "APT::Sandbox::User=root")
fi

start=$(date +%s)
say "updating private package lists for sid (in $aptdir)"
log=$aptdir/apt.log
if ! apt-get "${apt_opts[@]}" -q update >"$log" 2>&1; then
	cat "$log" >&2
	die "apt-get update of the private sid lists failed (see above); check network access to $uri"
fi
if grep -qE '^(W|E): ' "$log"; then grep -E '^(W|E): ' "$log" >&2; fi

say "downloading ${packages[*]} and their dependencies"
apt-get "${apt_opts[@]}" -q clean >/dev/null 2>&1 || true
if ! apt-get "${apt_opts[@]}" -q -y --download-only install "${packages[@]}" >"$log" 2>&1; then
	cat "$log" >&2
	die "apt-get could not download ${packages[*]} from sid (see above)"
fi
shopt -s nullglob
debs=("$aptdir"/archives/*.deb)
((${#debs[@]} > 0)) || die "apt-get downloaded no packages into $aptdir/archives"
say "downloaded ${#debs[@]} packages ($(du -sh "$aptdir/archives" | cut -f1))"

# --- unpack ------------------------------------------------------------------
tmp=$dest/prefix.new
rm -rf "$tmp"
mkdir -p "$tmp"
for d in "${debs[@]}"; do
	dpkg -x "$d" "$tmp" || die "dpkg -x $d failed"
done
[[ -x $tmp/usr/sbin/mysqld ]] || die "the packages did not contain usr/sbin/mysqld"
[[ -e $tmp/usr/lib/$triplet/$loader ]] || die "the packages did not contain the loader usr/lib/$triplet/$loader"
[[ -f $tmp/usr/lib/mysql/plugin/mysql_clone.so ]] || die "the packages did not contain the clone plugin usr/lib/mysql/plugin/mysql_clone.so"
rm -rf "$prefix"
mv "$tmp" "$prefix"

# --- basedir with wrappers -----------------------------------------------------
# Each wrapper execs the real binary through the prefix's loader and libraries.
tmp=$dest/basedir.new
rm -rf "$tmp"
mkdir -p "$tmp/bin"
wrap() { # wrap NAME TARGET
	cat >"$tmp/bin/$1" <<EOF
#!/bin/sh
# $1: run $2 from the private MySQL install through its own loader (written by lab/mysql/install.sh).
P='$prefix'
exec "\$P/usr/lib/$triplet/$loader" --argv0 "\$0" --library-path "\$P/usr/lib/$triplet:\$P/lib/$triplet" "\$P$2" "\$@"
EOF
	chmod 755 "$tmp/bin/$1"
}
wrap mysqld /usr/sbin/mysqld
for f in "$prefix"/usr/bin/*; do
	[[ -f $f && -x $f ]] || continue
	name=$(basename "$f")
	case $name in my* | ibd2sdi | innochecksum | perror) ;; *) continue ;; esac
	if [[ $(head -c4 "$f" | od -An -c | tr -d ' ') == 177ELF ]]; then
		wrap "$name" "/usr/bin/$name"
	fi
done
for name in mysql mysqladmin my_print_defaults; do
	[[ -x $tmp/bin/$name ]] || die "the packages did not contain usr/bin/$name"
done
# mysqld_safe is a shell script: a plain copy finds mysqld and my_print_defaults next to itself.
[[ -f $prefix/usr/bin/mysqld_safe ]] || die "the packages did not contain usr/bin/mysqld_safe"
cp "$prefix/usr/bin/mysqld_safe" "$tmp/bin/mysqld_safe"
chmod 755 "$tmp/bin/mysqld_safe"
# share/ is where a production basedir keeps error messages and charsets.
ln -s "$prefix/usr/share/mysql" "$tmp/share"
ln -s "$prefix/usr/lib/mysql" "$tmp/lib"
rm -rf "$basedir"
mv "$tmp" "$basedir"
# Template data folders (made by lab/mysqld) belong to the previous binaries.
rm -rf "$dest/templates"

# --- verify ------------------------------------------------------------------
if ! version=$("$basedir/bin/mysqld" --version 2>&1); then
	echo "$version" >&2
	die "$basedir/bin/mysqld --version failed (see above)"
fi
say "$version"
num=$(sed -nE 's/.*Ver ([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' <<<"$version")
[[ -n $num ]] || die "cannot read a version number from: $version"
"$basedir/bin/mysql" --version >/dev/null 2>&1 || die "$basedir/bin/mysql --version failed"

cat >"$dest/install.env" <<EOF
# Paths of the private MySQL install (written by lab/mysql/install.sh). Source it from a shell.
MYSQL_VERSION='$num'
MYSQL_PREFIX='$prefix'
MYSQL_BASEDIR='$basedir'
MYSQL_PLUGIN_DIR='$prefix/usr/lib/mysql/plugin'
MYSQL_LC_MESSAGES_DIR='$prefix/usr/share/mysql'
MYSQL_CHARSETS_DIR='$prefix/usr/share/mysql/charsets'
EOF
echo "$num" >"$dest/VERSION"
say "installed MySQL $num into $dest in $(($(date +%s) - start))s"
say "  basedir:    $basedir"
say "  plugin-dir: $prefix/usr/lib/mysql/plugin"
