CREATE TABLE `evaluation_metrics` (
	`task_id` text NOT NULL,
	`version` integer NOT NULL,
	`client_id` text NOT NULL,
	`name` text NOT NULL,
	`value` real NOT NULL,
	`num_examples` integer NOT NULL,
	`reported_at` integer NOT NULL,
	PRIMARY KEY(`task_id`, `version`, `client_id`, `name`)
);
--> statement-breakpoint
ALTER TABLE `model_versions` ADD `server_metrics` text;