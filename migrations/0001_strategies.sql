ALTER TABLE `model_versions` ADD `strategy` text;--> statement-breakpoint
ALTER TABLE `tasks` ADD `strategy` text DEFAULT '{"name":"fedavg"}' NOT NULL;