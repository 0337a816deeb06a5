# kafka-pipeline's production topology (README "Topics", deploy/README.md): a Kafka cluster of
# three brokers (Amazon MSK, or any existing cluster), the four topics and the pipeline's ACLs,
# and the pipeline on an existing Kubernetes cluster. See README.md in this folder.

provider "aws" {
  region = var.aws_region
}

module "msk" {
  source = "./modules/msk"
  count  = var.create_msk ? 1 : 0

  name                      = var.name
  vpc_id                    = var.vpc_id
  subnet_ids                = var.subnet_ids
  client_security_group_ids = var.client_security_group_ids
  broker_instance_type      = var.broker_instance_type
  broker_volume_gib         = var.broker_volume_gib
  tags                      = var.tags
}

locals {
  # Terraform administers MSK through IAM (port 9098: IAM principals are not subject to
  # Kafka ACLs); the pipeline connects with SASL/SCRAM (port 9096), as deploy/k8s configures.
  admin_brokers    = var.create_msk ? module.msk[0].bootstrap_brokers_sasl_iam : var.bootstrap_servers
  pipeline_brokers = var.create_msk ? module.msk[0].bootstrap_brokers_sasl_scram : var.bootstrap_servers
  pipeline_user    = var.create_msk ? module.msk[0].scram_username : var.pipeline_username
}

provider "kafka" {
  bootstrap_servers = split(",", local.admin_brokers)
  tls_enabled       = true
  sasl_mechanism    = var.create_msk ? "aws-iam" : var.kafka_admin_sasl_mechanism
  sasl_aws_region   = var.create_msk ? var.aws_region : null
  sasl_username     = var.create_msk ? null : var.kafka_admin_username
  sasl_password     = var.create_msk ? null : var.kafka_admin_password
}

provider "kustomization" {
  kubeconfig_path = var.kubeconfig_path
  context         = var.kube_context
}

module "topics" {
  source = "./modules/topics"

  partitions         = var.partitions
  replication_factor = var.replication_factor
  principal          = coalesce(var.pipeline_principal, "User:${local.pipeline_user}")
  group_id           = var.group_id
  exactly_once       = var.exactly_once
}

module "workload" {
  source = "./modules/workload"
  count  = var.deploy_workload ? 1 : 0

  namespace        = var.namespace
  image_repository = var.image_repository
  image_tag        = var.image_tag
  min_instances    = var.min_instances
  max_instances    = var.max_instances
  input_partitions = module.topics.partitions
  brokers          = local.pipeline_brokers
  topic_names      = module.topics.topic_names
  group_id         = var.group_id
  exactly_once     = var.exactly_once
  sasl_username    = local.pipeline_user
  sasl_password    = var.create_msk ? module.msk[0].scram_password : var.pipeline_password
  ca_pem           = var.ca_pem

  depends_on = [module.topics]
}
