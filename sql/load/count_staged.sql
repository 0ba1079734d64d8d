SELECT COUNT(*) FROM {staging}
