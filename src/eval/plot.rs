//! Plots of an eval, drawn with plotters as SVG and rasterised to PNG with resvg, using a
//! bundled font so the PNG looks the same on every machine.

use super::decay::ProfileRow;
use super::EvalError;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (800, 600);
/// DejaVu Sans (Bitstream Vera license, see assets/fonts/).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn perr(e: impl std::fmt::Display) -> EvalError {
    EvalError::Plot(e.to_string())
}

/// Required vs output length on log–log axes with the y = x line. Outputs of 0 words are
/// drawn at 1 (a log axis has no 0), as hollow marks.
/// A caption as SVG can hold it: control characters (which XML forbids, and which a
/// model's name may carry) shown as U+FFFD.
fn caption(title: &str) -> String {
    crate::text::strip_controls(title).replace('\n', " ")
}

pub fn length_scatter(points: &[(usize, usize)], title: &str) -> Result<String, EvalError> {
    let title = &caption(title);
    let vals = points.iter().flat_map(|&(x, y)| [x.max(1), y.max(1)]);
    let (mn, mx) = vals.fold((usize::MAX, 1), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = ((mn.min(mx) as f64 / 2.0).max(1.0), mx as f64 * 2.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("required length (words)")
            .y_desc("output length (words)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(perr)?;
        chart
            .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.mix(0.4).stroke_width(2)))
            .map_err(perr)?
            .label("y = x (S_l = 100)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
        let blue = RGBColor(31, 119, 180);
        chart.draw_series(points.iter().filter(|p| p.1 > 0).map(|&(x, y)| Circle::new((x as f64, y as f64), 5, blue.filled()))).map_err(perr)?.label("answers").legend(move |(x, y)| Circle::new((x + 10, y), 5, blue.filled()));
        chart.draw_series(points.iter().filter(|p| p.1 == 0).map(|&(x, _)| Circle::new((x as f64, 1.0), 5, RED.stroke_width(2)))).map_err(perr)?;
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK.mix(0.3)).position(SeriesLabelPosition::UpperLeft).draw().map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(svg)
}

/// distinct-1, distinct-2 and n-gram overlap per segment, against position in the text.
pub fn decay_lines(rows: &[ProfileRow], title: &str) -> Result<String, EvalError> {
    let title = &caption(title);
    let end = rows.last().map(|r| r.start as f64 + 1.0).unwrap_or(1.0).max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let mut chart = ChartBuilder::on(&root).caption(title, ("sans-serif", 20)).margin(16).x_label_area_size(48).y_label_area_size(56).build_cartesian_2d(0.0..end, 0.0..1.0).map_err(perr)?;
        chart.configure_mesh().x_desc("position in the answer (word)").y_desc("share").x_label_formatter(&|v| format!("{v:.0}")).label_style(("sans-serif", 14)).draw().map_err(perr)?;
        let series: [(&str, RGBColor, fn(&ProfileRow) -> f64); 3] = [
            ("distinct-1", RGBColor(31, 119, 180), |r| r.distinct1),
            ("distinct-2", RGBColor(44, 160, 44), |r| r.distinct2),
            ("overlap with earlier text", RGBColor(214, 39, 40), |r| r.overlap),
        ];
        for (name, color, f) in series {
            let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.start as f64, f(r))).collect();
            chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2))).map_err(perr)?.label(name).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(perr)?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK.mix(0.3)).position(SeriesLabelPosition::LowerLeft).draw().map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(svg)
}

/// Rasterises an SVG to PNG bytes with the bundled font.
pub fn png(svg: &str) -> Result<Vec<u8>, EvalError> {
    let mut opt = resvg::usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_font_data(FONT.to_vec());
    db.set_sans_serif_family("DejaVu Sans");
    opt.font_family = "DejaVu Sans".into();
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(perr)?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| perr("empty image"))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(perr)
}

/// Writes `<stem>.svg` and `<stem>.png` atomically.
pub fn save(svg: &str, dir: &Path, stem: &str) -> Result<(), EvalError> {
    let w = |name: String, bytes: &[u8]| {
        let p = dir.join(name);
        crate::fsutil::atomic_write(&p, bytes).map_err(|e| EvalError::io(&p, e))
    };
    w(format!("{stem}.svg"), svg.as_bytes())?;
    w(format!("{stem}.png"), &png(svg)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_renders_points_axes_and_text() {
        let svg = length_scatter(&[(100, 80), (1000, 300), (5000, 0)], "test").unwrap();
        assert!(svg.contains("required length (words)") && svg.contains("y = x"));
        // Two filled points, one hollow (0 words), plus the legend's marker.
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        let png = png(&svg).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let img = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((img.width(), img.height()), SIZE);
        // Text was rasterised: the caption area holds dark pixels.
        let dark = img.pixels()[..(SIZE.0 * 40) as usize].iter().filter(|p| p.red() < 100).count();
        assert!(dark > 20, "no caption pixels");
    }

    #[test]
    fn decay_plot_has_three_series() {
        let rows = vec![ProfileRow { start: 0, texts: 2, distinct1: 0.9, distinct2: 1.0, overlap: 0.0 }, ProfileRow { start: 100, texts: 1, distinct1: 0.3, distinct2: 0.4, overlap: 0.8 }];
        let svg = decay_lines(&rows, "decay").unwrap();
        assert!(svg.contains("distinct-1") && svg.contains("distinct-2") && svg.contains("overlap with earlier text"));
        assert!(png(&svg).is_ok());
    }
}
