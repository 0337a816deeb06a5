# Amazon MSK for the production topology of the README: three brokers in three availability
# zones, TLS between clients and brokers and among brokers, SASL/SCRAM-SHA-512 for the pipeline
# (what deploy/k8s/ configures) and optionally IAM for administration, replication factor 3 with
# two in-sync replicas for every topic, including the internal ones.

locals {
  # MSK's fixed client ports: SASL/SCRAM over TLS and IAM over TLS.
  scram_port = 9096
  iam_port   = 9098
  client_ports = concat(
    [local.scram_port],
    var.iam_enabled ? [local.iam_port] : [],
  )

  # Broker configuration. min.insync.replicas = min(2, rf - 1), the rule of
  # `kafka-pipeline topics` (src/commands/topics.rs): with 3 replicas a write is acknowledged
  # by 2, so an acknowledged record survives the loss of a broker and writes go on while one
  # is down. Topics are created by Terraform (modules/topics), never on first use: a typo in a
  # topic name must fail, not create a one-partition topic. ACLs are enforced for SCRAM users.
  server_properties = {
    "auto.create.topics.enable"                = "false"
    "default.replication.factor"               = "3"
    "min.insync.replicas"                      = "2"
    "offsets.topic.replication.factor"         = "3"
    "transaction.state.log.replication.factor" = "3"
    "transaction.state.log.min.isr"            = "2"
    "unclean.leader.election.enable"           = "false"
    "allow.everyone.if.no.acl.found"           = "false"
  }
}

resource "aws_msk_configuration" "this" {
  name           = var.name
  kafka_versions = [var.kafka_version]
  server_properties = join("\n", [
    for key in sort(keys(local.server_properties)) : "${key}=${local.server_properties[key]}"
  ])
}

resource "aws_kms_key" "this" {
  description         = "${var.name}: MSK storage and the SCRAM secret"
  enable_key_rotation = true
  tags                = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-msk"
  description = "${var.name} MSK brokers"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  for_each = {
    for pair in setproduct(var.client_security_group_ids, local.client_ports) :
    "${pair[0]}:${pair[1]}" => { group = pair[0], port = pair[1] }
  }

  security_group_id            = aws_security_group.this.id
  referenced_security_group_id = each.value.group
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = "Kafka clients"
}

resource "aws_cloudwatch_log_group" "brokers" {
  name              = "/msk/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = 3

  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.this.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.broker_volume_gib
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.this.arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  client_authentication {
    unauthenticated = false

    sasl {
      scram = true
      iam   = var.iam_enabled
    }
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.brokers.name
      }
    }
  }

  tags = var.tags
}

# The pipeline's SCRAM credentials. MSK reads them from Secrets Manager: the secret's name must
# start with AmazonMSK_ and it must be encrypted with a customer-managed key.
resource "random_password" "scram" {
  length  = 32
  special = false
}

resource "aws_secretsmanager_secret" "scram" {
  name       = "AmazonMSK_${var.name}_${var.scram_username}"
  kms_key_id = aws_kms_key.this.arn
  tags       = var.tags
}

resource "aws_secretsmanager_secret_version" "scram" {
  secret_id = aws_secretsmanager_secret.scram.id
  secret_string = jsonencode({
    username = var.scram_username
    password = random_password.scram.result
  })
}

resource "aws_msk_scram_secret_association" "this" {
  cluster_arn     = aws_msk_cluster.this.arn
  secret_arn_list = [aws_secretsmanager_secret.scram.arn]

  depends_on = [aws_secretsmanager_secret_version.scram]
}
