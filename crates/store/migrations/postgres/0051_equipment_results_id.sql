-- An analyser's identity in the results it makes (HL7 OBX-18, the equipment instance
-- identifier), so its tests count as its use on the register.
ALTER TABLE equipment_assets ADD COLUMN equipment_id TEXT;
