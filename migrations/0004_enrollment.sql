CREATE TABLE `enrollment_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`task_id` text NOT NULL,
	`key_hash` text NOT NULL,
	`label` text,
	`max_clients` integer NOT NULL,
	`client_ttl_seconds` integer,
	`created_at` integer NOT NULL,
	`expires_at` integer,
	`revoked_at` integer,
	FOREIGN KEY (`task_id`) REFERENCES `tasks`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `enrollment_keys_task_idx` ON `enrollment_keys` (`task_id`,`created_at`);--> statement-breakpoint
ALTER TABLE `clients` ADD `enrollment_key_id` text;--> statement-breakpoint
CREATE INDEX `clients_enrollment_key_idx` ON `clients` (`enrollment_key_id`);--> statement-breakpoint
ALTER TABLE `tasks` ADD `max_clients` integer DEFAULT 10000 NOT NULL;