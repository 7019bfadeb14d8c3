# A web app and its cache in two groups that find each other through Nomad's native service
# discovery: the cache registers the service "cache" (provider = "nomad"), and the app's
# template renders the cache's address from the catalog into its environment. Both groups use
# host networking with dynamic ports; a prestart task prepares a file the app serves from.
#
# Run it for real with examples/run-demo.sh (it starts `nomad agent -dev`).

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "greeting" {
  type        = string
  default     = "hello"
  description = "What the web task greets with."
}

locals {
  app = <<-EOT
    import os, sys, urllib.request, http.server
    greeting = open(os.environ["NOMAD_ALLOC_DIR"] + "/greeting").read().strip()
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            addr = os.environ.get("CACHE_ADDR", "")
            try:
                cached = urllib.request.urlopen("http://" + addr + "/", timeout=2).read().decode().strip()
            except Exception as e:
                cached = "unreachable (%s)" % e
            body = "%s from %s; the cache at %s says: %s\n" % (greeting, os.environ["NOMAD_ALLOC_NAME"], addr, cached)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())
        def log_message(self, fmt, *args):
            print("request:", fmt % args, flush=True)
    print("web listening on %s:%s, cache at %r" % (sys.argv[1], sys.argv[2], os.environ.get("CACHE_ADDR")), flush=True)
    http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
  EOT
}

job "web" {
  datacenters = var.datacenters
  type        = "service"

  group "cache" {
    network {
      port "db" {}
    }

    service {
      name     = "cache"
      port     = "db"
      provider = "nomad"
    }

    task "store" {
      driver = "raw_exec"

      template {
        data        = "a value kept by the cache group\n"
        destination = "local/www/index.html"
      }

      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "${NOMAD_PORT_db}", "--bind", "${NOMAD_IP_db}", "--directory", "local/www"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }

  group "app" {
    count = 2

    update {
      min_healthy_time = "2s"
    }

    network {
      port "http" {}
    }

    service {
      name     = "web"
      port     = "http"
      provider = "nomad"
      tags     = ["greeting-${var.greeting}"]
    }

    task "init" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      config {
        command = "/bin/sh"
        args    = ["-c", "echo ${upper(var.greeting)} > ${NOMAD_ALLOC_DIR}/greeting"]
      }
    }

    task "server" {
      driver = "raw_exec"

      template {
        data        = <<-EOT
          {{ range nomadService "cache" }}CACHE_ADDR={{ .Address }}:{{ .Port }}
          {{ end }}
        EOT
        destination = "local/cache.env"
        env         = true
      }

      config {
        command = "/usr/bin/python3"
        args    = ["-c", local.app, "${NOMAD_IP_http}", "${NOMAD_PORT_http}"]
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
