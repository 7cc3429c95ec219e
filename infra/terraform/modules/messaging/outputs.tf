output "queue_id" {
  description = "Full path of the queue: projects/P/locations/L/queues/Q (the functions' TASKS_QUEUE)."
  value       = google_cloud_tasks_queue.notifications.id
}

output "queue_name" {
  description = "Short name of the queue."
  value       = google_cloud_tasks_queue.notifications.name
}

output "queue_location" {
  description = "Location of the queue."
  value       = google_cloud_tasks_queue.notifications.location
}

output "max_attempts" {
  description = "The queue's retry_config.max_attempts."
  value       = google_cloud_tasks_queue.notifications.retry_config[0].max_attempts
}

output "tasks_invoker_email" {
  description = "Email of the account Cloud Tasks signs notify's OIDC tokens as."
  value       = google_service_account.tasks_invoker.email
}

output "tasks_invoker_id" {
  description = "Resource id of the tasks invoker account (for iam.serviceAccountUser grants)."
  value       = google_service_account.tasks_invoker.name
}

output "scheduler_email" {
  description = "Email of the account Cloud Scheduler signs the sweep's OIDC token as."
  value       = google_service_account.scheduler.email
}

output "topic_id" {
  description = "projects/P/topics/appointment-events (the functions' PUBSUB_TOPIC)."
  value       = google_pubsub_topic.appointment_events.id
}

output "topic_name" {
  description = "Short name of the events topic."
  value       = google_pubsub_topic.appointment_events.name
}

output "dead_letter_topic_id" {
  description = "Topic that receives events no subscriber could take."
  value       = google_pubsub_topic.appointment_events_dead_letter.id
}

output "smtp_username_secret_id" {
  description = "Secret id (short name) of the SMTP user name."
  value       = google_secret_manager_secret.smtp["smtp-username"].secret_id
}

output "smtp_password_secret_id" {
  description = "Secret id (short name) of the SMTP password."
  value       = google_secret_manager_secret.smtp["smtp-password"].secret_id
}

output "dead_letter_subscription" {
  description = "Short name of the subscription that keeps dead-lettered events until a person looks (the dead-letter alert watches it)."
  value       = google_pubsub_subscription.dead_letter_inbox.name
}
