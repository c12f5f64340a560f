#!/bin/sh
# meson install script: put the example configuration at DIR/ditd.conf unless
# a file is there already, so that reinstalling never replaces an operator's
# configuration (meson's own install_data would). Honours DESTDIR.
# Usage (from conf/meson.build): install-if-absent.sh EXAMPLE DIR INSTALLED_EXAMPLE
# (meson 1.0 shows what it prints only when it fails; newer versions always.)
set -eu
example=$1
dir=${DESTDIR:-}$2
if [ -e "$dir/ditd.conf" ]; then
    echo "Keeping $dir/ditd.conf (the current example: ${DESTDIR:-}$3)"
else
    install -d -m 0755 "$dir"
    install -m 0644 "$example" "$dir/ditd.conf"
    echo "Installing $example to $dir/ditd.conf"
fi
