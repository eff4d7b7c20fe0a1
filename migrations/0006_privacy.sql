ALTER TABLE `model_versions` ADD `privacy` text;--> statement-breakpoint
ALTER TABLE `tasks` ADD `privacy` text;