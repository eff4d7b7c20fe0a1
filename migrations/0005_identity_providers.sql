CREATE TABLE `identity_providers` (
	`id` text PRIMARY KEY NOT NULL,
	`task_id` text NOT NULL,
	`issuer` text NOT NULL,
	`audience` text NOT NULL,
	`jwks_uri` text NOT NULL,
	`label` text,
	`client_ttl_seconds` integer,
	`created_at` integer NOT NULL,
	`revoked_at` integer,
	FOREIGN KEY (`task_id`) REFERENCES `tasks`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `identity_providers_task_idx` ON `identity_providers` (`task_id`,`issuer`);--> statement-breakpoint
ALTER TABLE `clients` ADD `subject` text;