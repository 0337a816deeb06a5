variable "name" {
  description = "Cluster name; also the prefix of the configuration, security group, key and secret."
  type        = string
  default     = "kafka-pipeline"
}

variable "kafka_version" {
  description = "MSK Kafka version (aws kafka list-kafka-versions). The pipeline is tested against Apache Kafka 4.1."
  type        = string
  default     = "3.9.x"
}

variable "vpc_id" {
  description = "VPC of the brokers (and of the Kubernetes nodes that run the pipeline)."
  type        = string
}

variable "subnet_ids" {
  description = "One private subnet in each of three availability zones: one broker per zone."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) == 3 && length(distinct(var.subnet_ids)) == 3
    error_message = "Give exactly three distinct subnets, one per availability zone."
  }
}

variable "client_security_group_ids" {
  description = "Security groups whose members may connect to the brokers (the Kubernetes nodes' or pods', and where Terraform runs)."
  type        = list(string)
  default     = []
}

variable "broker_instance_type" {
  description = "Broker instance type. kafka.m7g.large (2 vCPU, 8 GiB) carries a few hundred thousand 200-byte events per second with replication factor 3."
  type        = string
  default     = "kafka.m7g.large"
}

variable "broker_volume_gib" {
  description = "EBS storage per broker in GiB. Each broker holds a replica of every partition: size for input rate x retention x record size."
  type        = number
  default     = 100
}

variable "scram_username" {
  description = "SASL/SCRAM user of the pipeline (and of KEDA's scaler, which shares its Secret)."
  type        = string
  default     = "kafka-pipeline"
}

variable "iam_enabled" {
  description = "Also enable IAM authentication (port 9098): the Terraform Kafka provider uses it to create topics and ACLs, since SCRAM users have no rights until ACLs grant them."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the brokers' CloudWatch logs."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
