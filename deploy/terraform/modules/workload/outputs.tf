output "namespace" {
  description = "Namespace of the pipeline."
  value       = var.namespace
}

output "image" {
  description = "The image the StatefulSet runs."
  value       = "${var.image_repository}:${var.image_tag}"
}

output "object_ids" {
  description = "The Kubernetes objects applied (kustomize ids)."
  value       = data.kustomization_overlay.pipeline.ids
}
