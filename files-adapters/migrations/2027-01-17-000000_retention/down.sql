DROP INDEX files_retained;
