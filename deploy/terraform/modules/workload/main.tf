# The workload side: deploy/k8s (StatefulSet, ConfigMap, Secret, PodDisruptionBudget,
# PodMonitor, KEDA TriggerAuthentication and ScaledObject) applied to an existing cluster with
# kustomize (the kbst/kustomization provider renders the same kustomization.yaml that
# `kubectl apply -k deploy/k8s` does), overlaid with the image, the namespace, the brokers,
# topics and group, and the instance range. The cluster must have the KEDA and Prometheus
# Operator CRDs (deploy/README.md).

locals {
  # The manifests this module applies.
  manifests = "${path.module}/../../../k8s"

  # ConfigMap entries set here, merged over deploy/k8s/configmap.yaml's (environment twins of
  # `kafka-pipeline run`'s flags).
  config = merge(
    {
      KAFKA_PIPELINE_BROKERS        = var.brokers
      KAFKA_PIPELINE_INPUT_TOPIC    = var.topic_names.input
      KAFKA_PIPELINE_OUTPUT_TOPIC   = var.topic_names.output
      KAFKA_PIPELINE_DLQ_TOPIC      = var.topic_names.dlq
      KAFKA_PIPELINE_INSIGHTS_TOPIC = var.topic_names.insights
      KAFKA_PIPELINE_GROUP_ID       = var.group_id
    },
    var.exactly_once ? { KAFKA_PIPELINE_GUARANTEE = "exactly-once" } : {},
    var.extra_config,
  )

  config_patch = jsonencode({
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "kafka-pipeline" }
    data       = local.config
  })

  # KEDA owns the replica count (the StatefulSet sets none); its trigger watches the same
  # brokers, group and input topic as the pipeline.
  scaler_patch = jsonencode([
    { op = "replace", path = "/spec/minReplicaCount", value = var.min_instances },
    { op = "replace", path = "/spec/maxReplicaCount", value = var.max_instances },
    { op = "replace", path = "/spec/triggers/0/metadata/bootstrapServers", value = var.brokers },
    { op = "replace", path = "/spec/triggers/0/metadata/consumerGroup", value = var.group_id },
    { op = "replace", path = "/spec/triggers/0/metadata/topic", value = var.topic_names.input },
  ])

  # The Secret's real values, or its removal from the objects when it is managed elsewhere
  # (two strings: a conditional's two objects would need the same attributes).
  secret_patch = var.create_secret ? jsonencode({
    apiVersion = "v1"
    kind       = "Secret"
    metadata   = { name = "kafka-pipeline-kafka" }
    stringData = { username = var.sasl_username, password = var.sasl_password, "ca.crt" = var.ca_pem }
    }) : jsonencode({
    apiVersion = "v1"
    kind       = "Secret"
    metadata   = { name = "kafka-pipeline-kafka" }
    "$patch"   = "delete"
  })
}

data "kustomization_overlay" "pipeline" {
  resources = [local.manifests]
  namespace = var.namespace

  images {
    name     = "kafka-pipeline"
    new_name = var.image_repository
    new_tag  = var.image_tag
  }

  patches {
    target = { kind = "ConfigMap", name = "kafka-pipeline" }
    patch  = local.config_patch
  }

  patches {
    target = { group = "keda.sh", kind = "ScaledObject", name = "kafka-pipeline" }
    patch  = local.scaler_patch
  }

  patches {
    target = { kind = "Secret", name = "kafka-pipeline-kafka" }
    patch  = local.secret_patch
  }

  kustomize_options = {
    load_restrictor = "none"
  }

  lifecycle {
    precondition {
      condition     = var.max_instances <= var.input_partitions && var.min_instances <= var.max_instances
      error_message = "Need min_instances <= max_instances <= the input topic's partitions: a member beyond the partition count gets no partition."
    }
    precondition {
      condition     = !var.create_secret || (var.sasl_username != "" && var.sasl_password != "" && var.ca_pem != "")
      error_message = "create_secret needs sasl_username, sasl_password and ca_pem."
    }
  }
}

resource "kustomization_resource" "namespace" {
  count = var.create_namespace ? 1 : 0

  manifest = jsonencode({
    apiVersion = "v1"
    kind       = "Namespace"
    metadata   = { name = var.namespace }
  })
}

# Objects in kustomize's order of priority; the Secret's manifest is kept out of the plan output.
resource "kustomization_resource" "p0" {
  for_each = data.kustomization_overlay.pipeline.ids_prio[0]

  manifest = data.kustomization_overlay.pipeline.manifests[each.value]

  depends_on = [kustomization_resource.namespace]
}

resource "kustomization_resource" "p1" {
  for_each = data.kustomization_overlay.pipeline.ids_prio[1]

  manifest = (
    startswith(each.value, "_/Secret/")
    ? sensitive(data.kustomization_overlay.pipeline.manifests[each.value])
    : data.kustomization_overlay.pipeline.manifests[each.value]
  )
  wait = var.wait_for_rollout

  timeouts {
    create = "10m"
    update = "10m"
  }

  depends_on = [kustomization_resource.p0]
}

resource "kustomization_resource" "p2" {
  for_each = data.kustomization_overlay.pipeline.ids_prio[2]

  manifest = data.kustomization_overlay.pipeline.manifests[each.value]

  depends_on = [kustomization_resource.p1]
}
