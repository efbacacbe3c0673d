DROP TRIGGER files_usage_insert ON files;
DROP FUNCTION files_usage_inserted();
DROP TRIGGER files_usage_delete ON files;
CREATE TRIGGER files_usage AFTER INSERT OR DELETE ON files
    FOR EACH ROW EXECUTE FUNCTION files_usage_trigger();
