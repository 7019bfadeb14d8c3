# A small web service with a cache beside it: two groups, host networking with a static
# and a dynamic port, native service discovery, a template and lifecycle tasks.

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "greeting" {
  type        = string
  default     = "hello"
  description = "What the web task answers with."
}

locals {
  web_port = 8080
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

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "store" {
      driver = "raw_exec"

      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "${NOMAD_PORT_db}", "--bind", "${NOMAD_IP_db}"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }

  group "app" {
    count = 2

    network {
      port "http" {
        static = local.web_port
      }
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
        args    = ["-m", "http.server", "${NOMAD_PORT_http}", "--directory", "${NOMAD_ALLOC_DIR}"]
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
