CREATE TABLE `clients` (
	`id` text PRIMARY KEY NOT NULL,
	`task_id` text NOT NULL,
	`token_hash` text NOT NULL,
	`label` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`task_id`) REFERENCES `tasks`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `clients_task_idx` ON `clients` (`task_id`);--> statement-breakpoint
CREATE TABLE `model_versions` (
	`task_id` text NOT NULL,
	`version` integer NOT NULL,
	`parent_version` integer,
	`round` integer,
	`content_hash` text NOT NULL,
	`r2_key` text NOT NULL,
	`byte_length` integer NOT NULL,
	`participants` integer DEFAULT 0 NOT NULL,
	`num_examples` integer DEFAULT 0 NOT NULL,
	`metrics` text,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`task_id`, `version`),
	FOREIGN KEY (`task_id`) REFERENCES `tasks`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `round_participants` (
	`task_id` text NOT NULL,
	`round` integer NOT NULL,
	`client_id` text NOT NULL,
	`num_examples` integer NOT NULL,
	`metrics` text,
	`accepted_at` integer NOT NULL,
	PRIMARY KEY(`task_id`, `round`, `client_id`)
);
--> statement-breakpoint
CREATE INDEX `participants_client_idx` ON `round_participants` (`client_id`);--> statement-breakpoint
CREATE TABLE `rounds` (
	`task_id` text NOT NULL,
	`round` integer NOT NULL,
	`status` text NOT NULL,
	`base_version` integer NOT NULL,
	`result_version` integer,
	`assigned` integer NOT NULL,
	`accepted` integer NOT NULL,
	`rejected` integer NOT NULL,
	`rejected_by_code` text NOT NULL,
	`num_examples` integer NOT NULL,
	`metrics` text,
	`opened_at` integer NOT NULL,
	`closed_at` integer NOT NULL,
	`close_reason` text NOT NULL,
	PRIMARY KEY(`task_id`, `round`),
	FOREIGN KEY (`task_id`) REFERENCES `tasks`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `tasks` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
	`model_topology` text NOT NULL,
	`weight_specs` text NOT NULL,
	`num_params` integer NOT NULL,
	`rules` text NOT NULL,
	`plan` text NOT NULL,
	`current_version` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL
);
