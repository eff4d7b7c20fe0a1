CREATE TABLE `admin_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`token_hash` text NOT NULL,
	`label` text,
	`created_at` integer NOT NULL,
	`expires_at` integer,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE TABLE `retired_admin_secrets` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`retired_at` integer NOT NULL
);
--> statement-breakpoint
DROP INDEX `clients_task_idx`;--> statement-breakpoint
ALTER TABLE `clients` ADD `expires_at` integer;--> statement-breakpoint
ALTER TABLE `clients` ADD `ttl_seconds` integer;--> statement-breakpoint
ALTER TABLE `clients` ADD `rotated_at` integer;--> statement-breakpoint
ALTER TABLE `clients` ADD `revoked_at` integer;--> statement-breakpoint
CREATE INDEX `clients_task_idx` ON `clients` (`task_id`,`created_at`);