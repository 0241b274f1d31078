# prefect-stacks: the ban endpoint the `cache-flush` flow talks to (VarnishPool block).
#
# Install: copy this file next to your VCL and include it after your backends:
#
#     vcl 4.1;
#     backend default { .host = "app.internal"; .port = "8080"; }
#     include "prefect_stacks_ban.vcl";
#
# (Varnish runs its own vcl_recv/vcl_backend_response/vcl_deliver code first, in the
# order the subs appear, then this; keep the include before any `return` of yours that
# would end vcl_recv for every request.) Then `varnishadm vcl.load` + `vcl.use`, or a
# restart, on EVERY instance of the pool.
#
# The contract (what prefect_stacks.blocks.varnish sends):
#
#   BAN / HTTP/1.1
#   X-Ban-Url:  <regex on the URL path+query, e.g. ^/products/ or \.css$>
#   X-Ban-Host: <regex on the Host header, e.g. (?i)^www\.example\.com(:[0-9]+)?$>
#
# One or both headers; both: objects matching both are banned. Answers 200 "Banned",
# 400 with Varnish's own reason for an invalid expression, 403 for a client outside
# the ACL (or a wrong secret). Bans test obj.http.x-ban-url / x-ban-host, copied from the
# backend request into each stored object (and removed before delivery), so the ban
# lurker can drop banned objects in the background. Answers carry X-Cache: HIT or MISS.
# A pattern cannot contain whitespace (a ban expression is split on it): write \s.

import std;

# Who may ban: your Prefect workers' addresses. Narrow this to them.
acl prefect_stacks_ban {
    "127.0.0.1";
    "::1";
    "10.0.0.0"/8;
    "172.16.0.0"/12;
    "192.168.0.0"/16;
}

sub vcl_recv {
    if (req.method == "BAN") {
        if (client.ip !~ prefect_stacks_ban) {
            return (synth(403, "BAN not allowed from this address"));
        }
        # Optional shared secret (the VarnishPool block's ban_secret, sent in the header
        # named by its ban_auth_header): uncomment and put the same value here.
        # if (req.http.X-Ban-Secret != "CHANGE-ME") {
        #     return (synth(403, "Wrong ban secret"));
        # }
        if (req.http.X-Ban-Url && req.http.X-Ban-Host) {
            if (std.ban("obj.http.x-ban-url ~ " + req.http.X-Ban-Url +
                    " && obj.http.x-ban-host ~ " + req.http.X-Ban-Host)) {
                return (synth(200, "Banned"));
            }
        } elsif (req.http.X-Ban-Url) {
            if (std.ban("obj.http.x-ban-url ~ " + req.http.X-Ban-Url)) {
                return (synth(200, "Banned"));
            }
        } elsif (req.http.X-Ban-Host) {
            if (std.ban("obj.http.x-ban-host ~ " + req.http.X-Ban-Host)) {
                return (synth(200, "Banned"));
            }
        } else {
            return (synth(400, "X-Ban-Url or X-Ban-Host header required"));
        }
        return (synth(400, std.ban_error()));
    }
}

sub vcl_backend_response {
    set beresp.http.x-ban-url = bereq.url;
    set beresp.http.x-ban-host = bereq.http.host;
}

sub vcl_deliver {
    unset resp.http.x-ban-url;
    unset resp.http.x-ban-host;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
