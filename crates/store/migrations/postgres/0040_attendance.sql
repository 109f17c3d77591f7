-- Clock-machine punches (考勤打卡), staff data: who clocked when (once per instant),
-- from which imported file, imported when and by whom. The attendance page compares
-- them with the roster.
CREATE TABLE roster_punches (
    practitioner  TEXT    NOT NULL,
    at            BIGINT NOT NULL,
    source        TEXT    NOT NULL,
    imported_at   BIGINT NOT NULL,
    imported_by   TEXT    NOT NULL,
    PRIMARY KEY (practitioner, at)
);
