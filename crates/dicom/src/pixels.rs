//! Pixels: a stored instance's frames as native samples (WADO-RS `/frames`) and as
//! images a browser shows (WADO-RS `/rendered`, the viewer), with the window a reader
//! chooses. Decoding is dicom-pixeldata's (native and encapsulated JPEG, RLE); the
//! images are encoded here as JPEG (jpeg-encoder) or PNG (png).

use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};
use dicom_pixeldata::{ConvertOptions, PixelDecoder, VoiLutOption, WindowLevel};

use crate::instance::split_file;

/// Why pixels cannot be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PixelError {
    /// The instance holds no image (a structured report, an encapsulated document).
    #[error("the instance holds no pixel data")]
    NoPixels,
    /// Frames are numbered from 1 to the instance's count.
    #[error("frame {asked} does not exist: the instance has {count} frame(s), numbered from 1")]
    NoSuchFrame { asked: u32, count: u32 },
    /// The pixel data is in a form this node stores but does not decode.
    #[error("pixel data cannot be decoded: {0}")]
    Undecodable(String),
    /// The stored file cannot be read.
    #[error("the stored instance cannot be read: {0}")]
    Unreadable(String),
}

/// The image encodings `/rendered` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

/// How to render one frame (PS3.18 §8.3.5: `window`, `viewport`, `quality`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rendering {
    /// The frame, numbered from 1.
    pub frame: u32,
    /// Window centre and width; `None`: the instance's own window, else the full range.
    pub window: Option<(f64, f64)>,
    /// The largest width and height the image is scaled down to fit (never up).
    pub viewport: Option<(u32, u32)>,
    pub format: Format,
    /// JPEG quality, 1–100.
    pub quality: u8,
}

impl Default for Rendering {
    fn default() -> Self {
        Rendering { frame: 1, window: None, viewport: None, format: Format::Jpeg, quality: 90 }
    }
}

/// A stored Part 10 file read as an object that decodes its pixels.
fn open(file: &[u8]) -> Result<FileDicomObject<InMemDicomObject>, PixelError> {
    let (class, instance, ts, at) = split_file(file).map_err(|r| PixelError::Unreadable(r.reason))?;
    let cs = dicom_encoding::text::SpecificCharacterSet::default();
    let object = crate::instance::decode(&file[at..], &ts, cs).map_err(PixelError::Unreadable)?;
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts)
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .build()
        .map_err(|e| PixelError::Unreadable(e.to_string()))?;
    Ok(object.with_exact_meta(meta))
}

fn count_of(o: &InMemDicomObject) -> u32 {
    o.element_opt(tags::NUMBER_OF_FRAMES)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .max(1)
}

/// The frame's index from 0, after checking `frame` (from 1) exists.
fn frame_index(o: &FileDicomObject<InMemDicomObject>, frame: u32) -> Result<u32, PixelError> {
    if o.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(PixelError::NoPixels);
    }
    let count = count_of(o);
    if frame == 0 || frame > count {
        return Err(PixelError::NoSuchFrame { asked: frame, count });
    }
    Ok(frame - 1)
}

/// The native samples of each frame asked (numbered from 1), little endian, as PS3.18
/// `application/octet-stream` frames: encapsulated pixel data is decoded first.
pub fn frames(file: &[u8], asked: &[u32]) -> Result<Vec<Vec<u8>>, PixelError> {
    let o = open(file)?;
    let mut out = Vec::with_capacity(asked.len());
    for &frame in asked {
        let index = frame_index(&o, frame)?;
        let decoded = o.decode_pixel_data_frame(index).map_err(|e| PixelError::Undecodable(e.to_string()))?;
        out.push(decoded.frame_data(0).map_err(|e| PixelError::Undecodable(e.to_string()))?.to_vec());
    }
    Ok(out)
}

/// One frame as an image.
pub fn render(file: &[u8], r: &Rendering) -> Result<Vec<u8>, PixelError> {
    let o = open(file)?;
    let index = frame_index(&o, r.frame)?;
    let undecodable = |e: dicom_pixeldata::Error| PixelError::Undecodable(e.to_string());
    let decoded = o.decode_pixel_data_frame(index).map_err(undecodable)?;
    let (width, height) = (decoded.columns(), decoded.rows());
    let samples = decoded.samples_per_pixel();
    if width == 0 || height == 0 || !(samples == 1 || samples == 3) {
        return Err(PixelError::Undecodable(format!("{samples} samples per pixel in a {width}×{height} image")));
    }
    let monochrome = decoded.photometric_interpretation().is_monochrome();
    let voi = match r.window {
        Some((center, width)) if monochrome => VoiLutOption::Custom(WindowLevel { center, width: width.max(1.0) }),
        _ => VoiLutOption::First,
    };
    let options = ConvertOptions::new().with_voi_lut(voi);
    // dicom-pixeldata's window maps onto the stored depth rounded up to a power of two
    // (8 or 16 bits): taken as u16, then narrowed to 8 bits for the image.
    let wide: Vec<u16> = decoded.to_vec_frame_with_options(0, &options).map_err(undecodable)?;
    let top = if decoded.bits_allocated() <= 8 || !monochrome {
        255u32
    } else {
        (1u32 << u32::from(decoded.bits_stored().clamp(1, 16)).next_power_of_two()) - 1
    };
    let mut pixels: Vec<u8> = wide.iter().map(|&v| (u32::from(v).min(top) * 255 / top) as u8).collect();
    if decoded.photometric_interpretation() == &dicom_pixeldata::PhotometricInterpretation::Monochrome1 {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    let channels = usize::from(samples);
    if pixels.len() < width as usize * height as usize * channels {
        return Err(PixelError::Undecodable("the frame holds fewer samples than its rows and columns".into()));
    }
    let (pixels, width, height) = match r.viewport {
        Some((vw, vh)) => fit(&pixels, width, height, channels, vw.max(1), vh.max(1)),
        None => (pixels, width, height),
    };
    encode(&pixels, width, height, channels, r)
}

/// Scales down (box average) to fit `vw`×`vh`, keeping the aspect; never up.
fn fit(pixels: &[u8], w: u32, h: u32, channels: usize, vw: u32, vh: u32) -> (Vec<u8>, u32, u32) {
    let scale = f64::min(f64::from(vw) / f64::from(w), f64::from(vh) / f64::from(h));
    if scale >= 1.0 {
        return (pixels.to_vec(), w, h);
    }
    let nw = ((f64::from(w) * scale).round() as u32).max(1);
    let nh = ((f64::from(h) * scale).round() as u32).max(1);
    let mut out = Vec::with_capacity(nw as usize * nh as usize * channels);
    for y in 0..nh {
        let (y0, y1) = (y * h / nh, ((y + 1) * h / nh).max(y * h / nh + 1));
        for x in 0..nw {
            let (x0, x1) = (x * w / nw, ((x + 1) * w / nw).max(x * w / nw + 1));
            for c in 0..channels {
                let mut sum = 0u64;
                for yy in y0..y1 {
                    let row = yy as usize * w as usize;
                    for xx in x0..x1 {
                        sum += u64::from(pixels[(row + xx as usize) * channels + c]);
                    }
                }
                let n = u64::from((y1 - y0) * (x1 - x0));
                out.push((sum / n) as u8);
            }
        }
    }
    (out, nw, nh)
}

fn encode(pixels: &[u8], width: u32, height: u32, channels: usize, r: &Rendering) -> Result<Vec<u8>, PixelError> {
    let failed = |e: String| PixelError::Undecodable(format!("the image cannot be encoded: {e}"));
    let size = width as usize * height as usize * channels;
    let pixels = &pixels[..size];
    match r.format {
        Format::Jpeg => {
            let (w, h) = (
                u16::try_from(width).map_err(|_| failed("wider than JPEG allows".into()))?,
                u16::try_from(height).map_err(|_| failed("taller than JPEG allows".into()))?,
            );
            let color = if channels == 1 { jpeg_encoder::ColorType::Luma } else { jpeg_encoder::ColorType::Rgb };
            let mut out = Vec::new();
            jpeg_encoder::Encoder::new(&mut out, r.quality.clamp(1, 100))
                .encode(pixels, w, h, color)
                .map_err(|e| failed(e.to_string()))?;
            Ok(out)
        }
        Format::Png => {
            let mut out = Vec::new();
            let mut enc = png::Encoder::new(&mut out, width, height);
            enc.set_color(if channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| failed(e.to_string()))?;
            w.write_image_data(pixels).map_err(|e| failed(e.to_string()))?;
            w.finish().map_err(|e| failed(e.to_string()))?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

    const SC: &str = "1.2.840.10008.5.1.4.1.1.7";

    /// A 4×2, 16-bit MONOCHROME2 (or 1) instance of `frames` frames whose samples count
    /// up from 0 by 100 (frame 2 starts at 1000), as a stored Part 10 file.
    fn file(photometric: &str, frames: u16, pixels: bool) -> Vec<u8> {
        let mut samples = Vec::new();
        for f in 0..frames {
            for i in 0..8u16 {
                samples.extend_from_slice(&(f * 1000 + i * 100).to_le_bytes());
            }
        }
        let mut e = vec![
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(SC)),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.3.4.5")),
            DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
            DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from(photometric)),
            DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from(frames.to_string())),
            DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(2_u16)),
            DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(4_u16)),
            DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
            DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(16_u16)),
            DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15_u16)),
            DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0_u16)),
        ];
        if pixels {
            e.push(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(samples)));
        }
        let o = InMemDicomObject::from_element_iter(e);
        let mut out = crate::instance::file_header(SC, "1.2.3.4.5", "1.2.840.10008.1.2.1", "TEST").expect("header");
        o.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).expect("writes");
        out
    }

    fn png_pixels(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn frames_are_the_native_samples_of_the_frame_asked() {
        let f = file("MONOCHROME2", 2, true);
        let got = frames(&f, &[2, 1]).expect("frames");
        assert_eq!(got[0][..4], [0xE8, 0x03, 0x4C, 0x04], "frame 2 starts at 1000, 1100");
        assert_eq!(got[1].len(), 16);
        assert_eq!(frames(&f, &[3]), Err(PixelError::NoSuchFrame { asked: 3, count: 2 }));
        assert_eq!(frames(&f, &[0]), Err(PixelError::NoSuchFrame { asked: 0, count: 2 }));
        assert_eq!(frames(&file("MONOCHROME2", 1, false), &[1]), Err(PixelError::NoPixels));
        assert!(matches!(frames(&f[..f.len() - 5], &[1]), Err(PixelError::Unreadable(_))));
    }

    #[test]
    fn a_window_maps_samples_to_grey_and_monochrome1_is_inverted() {
        let f = file("MONOCHROME2", 2, true);
        let r = Rendering { window: Some((350.0, 2.0)), format: Format::Png, ..Default::default() };
        let (w, h, px) = png_pixels(&render(&f, &r).expect("renders"));
        assert_eq!((w, h), (4, 2));
        assert_eq!(px, [0, 0, 0, 0, 255, 255, 255, 255], "below the window black, above it white");
        let inverted = png_pixels(&render(&file("MONOCHROME1", 2, true), &r).expect("renders")).2;
        assert_eq!(inverted, [255, 255, 255, 255, 0, 0, 0, 0]);
        // No window given or stored: the frame's range is spread over black to white.
        let r = Rendering { frame: 2, format: Format::Png, ..Default::default() };
        let px = png_pixels(&render(&f, &r).expect("renders")).2;
        assert_eq!((px[0], px[7]), (0, 255));
        assert!(px.windows(2).all(|p| p[0] <= p[1]), "the ramp stays a ramp: {px:?}");
    }

    #[test]
    fn a_viewport_scales_down_keeping_the_aspect_and_jpeg_is_jpeg() {
        let f = file("MONOCHROME2", 1, true);
        let r = Rendering { viewport: Some((2, 2)), format: Format::Png, ..Default::default() };
        let (w, h, _) = png_pixels(&render(&f, &r).expect("renders"));
        assert_eq!((w, h), (2, 1));
        let r = Rendering { viewport: Some((400, 400)), format: Format::Png, ..Default::default() };
        assert_eq!(png_pixels(&render(&f, &r).expect("renders")).0, 4, "never scaled up");
        let jpeg = render(&f, &Rendering::default()).expect("renders");
        assert_eq!((jpeg[0], jpeg[1]), (0xFF, 0xD8));
        assert_eq!(
            render(&f, &Rendering { frame: 2, ..Default::default() }).unwrap_err().to_string(),
            "frame 2 does not exist: the instance has 1 frame(s), numbered from 1"
        );
    }
}
