#!/bin/sh
# Bring your own server: nginx through `arch-sim bench --server-cmd`, configured as the
# harness's own `--peer nginx` (one worker, keep-alive without a request limit, sendfile, no
# access log), so the two paths can be compared in one run:
#
#   arch-sim bench --arch state-group --peer nginx \
#       --server-cmd "sh examples/byo-nginx.sh {port} {root} {tmp}" --server-name nginx-byo
#
# usage: byo-nginx.sh PORT ROOT TMP - writes nginx.conf into TMP, then runs nginx in the
# foreground (the harness stops it with SIGTERM; a server must not daemonize, or its switches
# leave the process tree the harness counts).
set -eu
port=$1 root=$2 tmp=$3
nginx=$(command -v nginx || echo /usr/sbin/nginx)
cat > "$tmp/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 8192; use epoll; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    default_type application/octet-stream;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    server { listen 127.0.0.1:$port; root $root; location / { } }
}
CONF
exec "$nginx" -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/error.log"
